//! Fuzz target: Corefile text → parse → validate, what `clusterdns check`
//! does (no sockets, nothing started). Imports resolve against a small
//! in-memory file system ([`FILES`]) and `{$ENV}` against [`env()`].
//!
//! Properties: no panic; every error points into the file it names (line 0
//! only for whole-file errors, a line of the main file within its text) and
//! says something; a valid config has, for every server, at least one zone,
//! each a lower-case FQDN.

use std::path::Path;

use crate::config::{self, Config};
use crate::corefile::{self, CorefileError, MemFs};

/// Where the fuzzed Corefile pretends to live (imports are relative to it).
pub const MAIN: &str = "/fuzz/Corefile";

/// Files an `import` may name: a snippet file, and a glob's worth of blocks.
pub const FILES: &[(&str, &str)] = &[
    ("/fuzz/common", "errors\nlog\ncache 30\n"),
    ("/fuzz/zones/a.conf", "a.example:53 {\n    whoami\n}\n"),
    (
        "/fuzz/zones/b.conf",
        "b.example:53 {\n    import ../common\n}\n",
    ),
];

/// The environment `{$NAME}` sees.
pub fn env(name: &str) -> Option<String> {
    match name {
        "ZONE" => Some("cluster.local".into()),
        "PORT" => Some("1053".into()),
        "UPSTREAM" => Some("/etc/resolv.conf".into()),
        _ => None,
    }
}

/// What came of one input.
#[derive(Debug)]
pub enum Outcome {
    /// Not UTF-8 (a Corefile read from disk would be refused the same way).
    NotText,
    /// A valid configuration.
    Valid(Config),
    /// Refused, with these errors.
    Invalid(Vec<CorefileError>),
}

/// Parses and validates `data` as a Corefile.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::NotText;
    };
    let fs = FILES
        .iter()
        .fold(MemFs::new(), |fs, (path, text)| fs.with(*path, *text));
    let main = Path::new(MAIN);
    let loaded = corefile::parse_str(text, main, &env, &fs)
        .map_err(|e| vec![e])
        .and_then(|cf| config::from_corefile(&cf, 53));
    match loaded {
        Ok(cfg) => {
            for s in &cfg.servers {
                assert!(!s.zones.is_empty(), "a server without zones");
                for z in &s.zones {
                    assert!(z.is_fqdn(), "zone {z} is not fully qualified");
                    assert_eq!(*z, z.to_lowercase(), "zone {z} is not lower-case");
                }
            }
            Outcome::Valid(cfg)
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without an error");
            for e in &errors {
                check_error(e, text);
            }
            Outcome::Invalid(errors)
        }
    }
}

fn check_error(e: &CorefileError, text: &str) {
    assert!(
        !e.message.trim().is_empty(),
        "an error without a message: {e:?}"
    );
    assert_eq!(
        e.line == 0,
        e.col == 0,
        "line and column are 0 together: {e:?}"
    );
    let lines = if *e.file == *Path::new(MAIN) {
        text.split('\n').count()
    } else if let Some((_, t)) = FILES.iter().find(|(p, _)| *e.file == *Path::new(p)) {
        t.split('\n').count()
    } else {
        // A file named by the input that does not exist: a whole-file error.
        assert_eq!(e.line, 0, "a position in a file that was never read: {e:?}");
        return;
    };
    assert!(
        usize::try_from(e.line).is_ok_and(|l| l <= lines),
        "error line {} beyond the {lines} lines of {}: {e}",
        e.line,
        e.file.display()
    );
}

/// Seed Corefiles besides the repository's own: every plugin and the
/// grammar's corners (imports, snippets, env, quoting, several keys).
pub const SEEDS: &[(&str, &str)] = &[
    (
        "imports",
        "(snip) {\n    whoami\n}\n.:53 {\n    import snip\n    import common\n}\nimport zones/*.conf\n",
    ),
    (
        "env",
        "{$ZONE}:{$PORT} {\n    kubernetes {$ZONE} {\n        endpoint http://127.0.0.1:6443\n    }\n    forward . {$UPSTREAM}\n}\n",
    ),
    (
        "many-keys",
        "example.org:53 dns://example.net:1053 10.0.0.0/24 fd00::/120 {\n    whoami\n}\n",
    ),
    (
        "every-plugin",
        r#".:53 {
    bind 127.0.0.1 ::1
    errors {
        consolidate 5m ".* i/o timeout$" warning
    }
    log . "{remote} {type} {name}" {
        class denial error
    }
    health 127.0.0.1:8080 {
        lameduck 5s
    }
    ready 127.0.0.1:8181
    prometheus 127.0.0.1:9153
    reload 10s 2s
    any
    loadbalance round_robin
    cache 30 cluster.local {
        success 9984 30 5
        denial 9984 5
        prefetch 10 1m 10%
        serve_stale 1h immediate
    }
    rewrite name suffix .corp. .cluster.local. answer auto
    rewrite stop type ANY HINFO
    autopath @kubernetes
    template IN A example.org {
        match "^(?P<x>.*)[.]example[.]org[.]$"
        answer "{{ .Name }} 60 IN A 10.0.0.1"
        additional "ns.example.org. 60 IN A 10.0.0.2"
        authority "example.org. 60 IN NS ns.example.org."
        rcode NOERROR
        fallthrough
    }
    hosts /etc/hosts example.net {
        10.1.1.1 a.example.net
        ttl 60
        no_reverse
        reload 5s
        fallthrough
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint http://127.0.0.1:6443
        namespaces default demo
        labels app=web,tier!=db
        pods verified
        endpoint_pod_names
        ttl 30
        noendpoints
        fallthrough in-addr.arpa ip6.arpa
        ignore empty_service
    }
    loop
    forward . 127.0.0.1:5300 [::1]:5301 {
        except example.com
        force_tcp
        max_fails 3
        health_check 5s
        policy sequential
        max_concurrent 1000
    }
    whoami
}
"#,
    ),
];
