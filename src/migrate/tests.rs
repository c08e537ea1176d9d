//! Table tests of [`migrate`] on the shapes operators have: kubeadm's Corefile,
//! the common stub-domain and forward variants, kube-dns ConfigMaps as
//! `kubectl get cm -o yaml` (and `-o json`) prints them, and inputs we refuse.

use super::{MigrateError, Migration, migrate};

/// The notes as `LINE: message [changes]` lines, for compact assertions.
fn notes(m: &Migration) -> Vec<String> {
    m.notes
        .iter()
        .map(|n| {
            let tag = if n.changes_behaviour {
                " [changes]"
            } else {
                ""
            };
            format!("{}: {}{tag}", n.line, n.message)
        })
        .collect()
}

/// Every note whose message contains `needle`, as `(line, changes_behaviour)`.
fn find(m: &Migration, needle: &str) -> Vec<(u32, bool)> {
    m.notes
        .iter()
        .filter(|n| n.message.contains(needle))
        .map(|n| (n.line, n.changes_behaviour))
        .collect()
}

const KUBEADM: &str = include_str!("../../config/Corefile.kubeadm");

/// kubeadm's main block with `forward . UPSTREAMS`, as the kube-dns translation prints it.
fn kubeadm_main(upstreams: &str) -> String {
    format!(
        ".:53 {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :9153
    forward . {upstreams} {{
        max_concurrent 1000
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"
    )
}

/// Corefiles that clusterdns runs as they are: the output is the input, byte for
/// byte, with no note.
#[test]
fn corefiles_we_support_are_returned_unchanged() {
    let cases: &[(&str, &str)] = &[
        ("kubeadm's default", KUBEADM),
        (
            "a stub domain block next to the main one (CoreDNS docs, consul)",
            "# keep me\n.:53 {\n    errors\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }\n    forward . 172.16.0.1\n    cache 30\n}\nconsul.local:53 {\n    errors\n    cache 30\n    forward . 10.150.0.1\n}\n",
        ),
        (
            "forward to upstreams with options, hosts, rewrite, log",
            ".:53 {\n    log\n    hosts {\n        10.0.0.1 db.internal\n        fallthrough\n    }\n    rewrite name exact a.example. b.example.\n    rewrite name suffix .old. .new.\n    forward . 8.8.8.8 1.1.1.1:5353 {\n        policy sequential\n        health_check 5s\n    }\n    cache 30 {\n        success 9984 30\n        prefetch 10\n    }\n}\n",
        ),
        (
            "zones named like YAML keys",
            "data:53 {\n    whoami\n}\nkind {\n    whoami\n}\n",
        ),
        (
            "a snippet imported in two blocks",
            "(common) {\n    errors\n    cache 30\n}\nexample.org {\n    import common\n    forward . 10.0.0.53\n}\n.:53 {\n    import common\n    forward . /etc/resolv.conf\n}\n",
        ),
    ];
    for (what, input) in cases {
        let m = migrate(input, "Corefile").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(m.corefile, *input, "{what}");
        assert_eq!(notes(&m), Vec::<String>::new(), "{what}");
        assert!(!m.changes_behaviour(), "{what}");
    }
}

/// What we refuse is named at its line and dropped; the smallest unit goes:
/// a line of a block, else the directive, else the key, else the block.
#[test]
fn corefile_constructs_we_refuse_are_named_at_their_line_and_dropped() {
    struct Case {
        what: &'static str,
        input: &'static str,
        /// Each note: (line, substring of the message).
        notes: &'static [(u32, &'static str)],
        /// The printed Corefile.
        output: &'static str,
    }
    let cases = [
        Case {
            what: "an upstream we cannot speak to drops the forward",
            input: ".:53 {\n    errors\n    forward . https://1.1.1.1/dns-query {\n        max_fails 3\n    }\n    cache 30\n}\n",
            notes: &[(
                3,
                "forward: 'https' is not supported as a destination protocol",
            )],
            output: ".:53 {\n    errors\n    cache 30\n}\n",
        },
        Case {
            what: "a plugin we do not ship, and one nobody has",
            input: ".:53 {\n    errors\n    etcd example.org {\n        path /skydns\n    }\n    frobnicate\n    whoami\n}\n",
            notes: &[
                (
                    3,
                    "plugin 'etcd' is not supported by clusterdns: no etcd backend; Kubernetes Services are the source of records (directive dropped)",
                ),
                (6, "unknown directive 'frobnicate' (directive dropped)"),
            ],
            output: ".:53 {\n    errors\n    whoami\n}\n",
        },
        Case {
            what: "refused options: only their lines go",
            input: ".:53 {\n    kubernetes cluster.local {\n        pods insecure\n        resyncperiod 30s\n        upstream\n    }\n    forward . 10.0.0.1 {\n        expire 10s\n    }\n}\n",
            notes: &[
                (
                    4,
                    "kubernetes: option 'resyncperiod' is not supported by clusterdns (line dropped)",
                ),
                (
                    5,
                    "kubernetes: option 'upstream' is not supported by clusterdns (line dropped)",
                ),
                (8, "forward: expire: 'expire' applies to tls:// upstreams"),
            ],
            output: ".:53 {\n    kubernetes cluster.local {\n        pods insecure\n    }\n    forward . 10.0.0.1 {\n    }\n}\n",
        },
        Case {
            what: "a DNS-over-gRPC server block goes whole; comments are lost, which is said",
            input: "# main\n.:53 {\n    whoami\n}\ngrpc://.:443 {\n    tls cert.pem key.pem\n    whoami\n}\n",
            notes: &[
                (0, "comments and layout are not kept"),
                (5, "transport grpc:// is not supported"),
                (5, "the whole block is dropped"),
            ],
            output: ".:53 {\n    whoami\n}\n",
        },
        Case {
            what: "a refused line in a snippet imported twice is noted once",
            input: "(up) {\n    forward . 10.0.0.1 {\n        expire 5s\n    }\n}\na.example {\n    import up\n}\nb.example {\n    import up\n}\n",
            notes: &[(3, "forward: expire: 'expire' applies to tls:// upstreams")],
            output: "a.example {\n    forward . 10.0.0.1 {\n    }\n}\n\nb.example {\n    forward . 10.0.0.1 {\n    }\n}\n",
        },
        Case {
            what: "a directive twice (CoreDNS refuses it too)",
            input: ".:53 {\n    cache 30\n    cache 10\n}\n",
            notes: &[(3, "cache: only once per server block")],
            output: ".:53 {\n    cache 30\n}\n",
        },
    ];
    for c in cases {
        let m = migrate(c.input, "Corefile").unwrap_or_else(|e| panic!("{}: {e}", c.what));
        let got = notes(&m);
        for (line, needle) in c.notes {
            assert!(
                got.iter()
                    .any(|n| n.starts_with(&format!("{line}: ")) && n.contains(needle)),
                "{}: no note {line}: {needle}; got {got:#?}",
                c.what
            );
        }
        assert!(m.changes_behaviour(), "{}", c.what);
        assert_eq!(got.len(), c.notes.len(), "{}: {got:#?}", c.what);
        assert_eq!(m.corefile, c.output, "{}", c.what);
        assert!(
            super::coredns::check(&m.corefile).is_empty(),
            "{}: the output fails check",
            c.what
        );
    }
}

#[test]
fn an_environment_reference_is_kept_and_only_noted() {
    let input = ".:{$DNS_PORT} {\n    forward . {$UPSTREAM}\n    cache 30\n    frobnicate\n}\n";
    let m = migrate(input, "Corefile").expect("migrate");
    assert_eq!(
        m.corefile,
        ".:{$DNS_PORT} {\n    forward . {$UPSTREAM}\n    cache 30\n}\n"
    );
    assert_eq!(find(&m, "environment reference"), [(1, false), (2, false)]);
    assert_eq!(find(&m, "frobnicate"), [(4, true)]);
}

#[test]
fn a_default_of_an_environment_reference_lost_in_the_reprint_is_a_change() {
    let input = ".:53 {\n    forward . {$UPSTREAM:8.8.8.8}\n    frobnicate\n}\n";
    let m = migrate(input, "Corefile").expect("migrate");
    assert_eq!(m.corefile, ".:53 {\n    forward . {$UPSTREAM}\n}\n");
    assert_eq!(
        find(&m, "a default ({$NAME:default}) is not kept"),
        [(0, true)]
    );
    // Without anything dropped the input is printed as it is, default included.
    let kept = ".:53 {\n    forward . {$UPSTREAM:8.8.8.8}\n}\n";
    assert_eq!(migrate(kept, "Corefile").expect("migrate").corefile, kept);
}

#[test]
fn corefile_syntax_errors_and_imports_are_errors_with_their_line() {
    let e = migrate(".:53 {\n    errors\n", "Corefile").unwrap_err();
    assert!(
        matches!(e, MigrateError::Corefile { line: 1.., .. }),
        "{e:?}"
    );
    let e = migrate(".:53 {\n    import other.conf\n}\n", "Corefile").unwrap_err();
    assert_eq!(e.line(), 2, "{e:?}");
    assert!(e.to_string().contains("paste imported files in"), "{e}");
}

/// kube-dns's ConfigMap with two stub domains and upstreams, as
/// `kubectl get cm kube-dns -n kube-system -o yaml` prints it.
const KUBE_DNS: &str = r#"apiVersion: v1
data:
  stubDomains: |
    {"acme.local": ["1.2.3.4"], "corp.example": ["10.0.0.10:5353", "[2001:db8::53]:53", "2001:db8::54"]}
  upstreamNameservers: |
    ["8.8.8.8", "8.8.4.4:53"]
kind: ConfigMap
metadata:
  name: kube-dns
  namespace: kube-system
"#;

#[test]
fn a_kube_dns_configmap_becomes_kubeadms_corefile_with_stub_blocks() {
    let m = migrate(KUBE_DNS, "kube-dns.yaml").expect("migrate");
    let want = format!(
        "{}\nacme.local:53 {{\n    errors\n    cache 30\n    forward . 1.2.3.4\n}}\n\n\
         corp.example:53 {{\n    errors\n    cache 30\n    forward . 10.0.0.10:5353 [2001:db8::53]:53 [2001:db8::54]:53\n}}\n",
        kubeadm_main("8.8.8.8 8.8.4.4")
    );
    assert_eq!(m.corefile, want);
    assert!(!m.changes_behaviour(), "{:#?}", notes(&m));
    assert_eq!(find(&m, "cluster.local is assumed"), [(0, false)]);
    assert!(super::coredns::check(&m.corefile).is_empty());
}

#[test]
fn kube_dns_configmap_shapes_translate_alike() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "no data: kube-dns's defaults",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n  namespace: kube-system\n",
            "",
        ),
        (
            "empty values",
            "apiVersion: v1\ndata:\n  stubDomains: \"\"\n  upstreamNameservers: \"[]\"\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n",
            "",
        ),
        (
            "quoted one-line JSON",
            "apiVersion: v1\ndata:\n  stubDomains: '{\"acme.local\": [\"1.2.3.4\"]}'\nkind: ConfigMap\nmetadata:\n  name: kube-dns\n",
            "\nacme.local:53 {\n    errors\n    cache 30\n    forward . 1.2.3.4\n}\n",
        ),
        (
            "kubectl -o json",
            "{\n    \"apiVersion\": \"v1\",\n    \"data\": {\n        \"stubDomains\": \"{\\\"Acme.Local.\\\": [\\\"1.2.3.4\\\"]}\\n\"\n    },\n    \"kind\": \"ConfigMap\"\n}\n",
            "\nacme.local:53 {\n    errors\n    cache 30\n    forward . 1.2.3.4\n}\n",
        ),
    ];
    for (what, input, stubs) in cases {
        let m = migrate(input, "cm.yaml").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(
            m.corefile,
            format!("{}{stubs}", kubeadm_main("/etc/resolv.conf")),
            "{what}"
        );
        assert!(!m.changes_behaviour(), "{what}: {:#?}", notes(&m));
    }
}

#[test]
fn federations_are_reported_at_their_line_as_a_change() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube-dns\ndata:\n  upstreamNameservers: '[\"8.8.8.8\"]'\n  federations: '{\"myfed\": \"example.com\"}'\n";
    let m = migrate(input, "cm.yaml").expect("migrate");
    assert_eq!(find(&m, "federations are not supported"), [(7, true)]);
    assert!(m.changes_behaviour());
    assert_eq!(m.corefile, kubeadm_main("8.8.8.8"));
}

#[test]
fn host_name_nameservers_are_left_out_and_reported() {
    let input = "apiVersion: v1\nkind: ConfigMap\ndata:\n  stubDomains: |\n    {\"consul.local\": [\"consul.service\"], \"acme.local\": [\"ns.acme.local\", \"1.2.3.4\"]}\n  upstreamNameservers: |\n    [\"dns.example.com\"]\n";
    let m = migrate(input, "cm.yaml").expect("migrate");
    assert!(m.changes_behaviour());
    assert_eq!(
        find(&m, "\"consul.service\" is not an IP address"),
        [(5, true)]
    );
    assert_eq!(
        find(&m, "\"consul.local\": no usable nameserver"),
        [(5, true)]
    );
    assert_eq!(
        find(&m, "\"ns.acme.local\" is not an IP address"),
        [(5, true)]
    );
    assert_eq!(
        find(&m, "\"dns.example.com\" is not an IP address"),
        [(7, true)]
    );
    assert_eq!(
        m.corefile,
        format!(
            "{}\nacme.local:53 {{\n    errors\n    cache 30\n    forward . 1.2.3.4\n}}\n",
            kubeadm_main("/etc/resolv.conf")
        )
    );
}

#[test]
fn stub_domains_that_are_not_domain_names_are_dropped_and_reported() {
    let input = "apiVersion: v1\nkind: ConfigMap\ndata:\n  stubDomains: |\n    {\"10.0.0.0/8\": [\"1.2.3.4\"],\n     \"acme.local:5353\": [\"1.2.3.4\"],\n     \"a..b\": [\"1.2.3.4\"],\n     \"ok.local\": [\"1.2.3.4\"]}\n";
    let m = migrate(input, "cm.yaml").expect("migrate");
    assert_eq!(
        find(&m, "not a domain name"),
        [(5, true), (6, true), (7, true)]
    );
    assert_eq!(
        m.corefile,
        format!(
            "{}\nok.local:53 {{\n    errors\n    cache 30\n    forward . 1.2.3.4\n}}\n",
            kubeadm_main("/etc/resolv.conf")
        )
    );
}

#[test]
fn bad_kube_dns_data_is_an_error_naming_the_key_and_its_line() {
    let cases: &[(&str, &str, u32, &str)] = &[
        (
            "unterminated JSON",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  stubDomains: '{\"acme.local\": [\"1.2.3.4\"'\n",
            4,
            "data.stubDomains: not valid JSON for a map of domain to nameserver list",
        ),
        (
            "broken JSON in a block scalar: the line inside it",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  stubDomains: |\n    {\"acme.local\":\n      [\"1.2.3.4\",]}\n",
            6,
            "data.stubDomains: not valid JSON",
        ),
        (
            "a list where a map belongs",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  upstreamNameservers: '[\"8.8.8.8\"]'\n  stubDomains: '[\"1.2.3.4\"]'\n",
            5,
            "data.stubDomains: not valid JSON",
        ),
        (
            "a string where a list belongs",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  upstreamNameservers: '\"8.8.8.8\"'\n",
            4,
            "data.upstreamNameservers: not valid JSON for a list of nameservers",
        ),
        (
            "YAML where JSON text belongs",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  stubDomains:\n    acme.local: [1.2.3.4]\n",
            4,
            "data.stubDomains: must be a string holding JSON",
        ),
    ];
    for (what, input, line, needle) in cases {
        let e = migrate(input, "cm.yaml").expect_err(what);
        assert_eq!(e.line(), *line, "{what}: {e}");
        assert!(e.to_string().contains(needle), "{what}: {e}");
    }
    let e = migrate(
        "apiVersion: v1\nkind: Service\nmetadata: {name: kube-dns}\n",
        "x",
    )
    .unwrap_err();
    assert_eq!(
        (
            e.line(),
            e.to_string().contains("a Service, not a ConfigMap")
        ),
        (2, true)
    );
    let e = migrate("apiVersion: v1\nkind: ConfigMap\ndata: [\n", "x").unwrap_err();
    assert!(matches!(e, MigrateError::Yaml { .. }), "{e:?}");
}

#[test]
fn a_coredns_configmap_is_carried_over_with_configmap_lines() {
    let input = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: coredns\n  namespace: kube-system\ndata:\n  Corefile: |\n    .:53 {\n        errors\n        forward . https://9.9.9.9\n        cache 30\n    }\n";
    let m = migrate(input, "coredns.yaml").expect("migrate");
    assert_eq!(find(&m, "'https' is not supported"), [(10, true)]);
    assert_eq!(m.corefile, ".:53 {\n    errors\n    cache 30\n}\n");

    let unchanged = format!(
        "apiVersion: v1\nkind: ConfigMap\ndata:\n  Corefile: |\n{}",
        KUBEADM
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    let m = migrate(&unchanged, "coredns.yaml").expect("migrate");
    assert!(m.notes.is_empty(), "{:#?}", notes(&m));
    assert!(super::coredns::check(&m.corefile).is_empty());
    assert!(m.corefile.contains("forward . /etc/resolv.conf {"));
}
