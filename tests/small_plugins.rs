//! The small CoreDNS plugins (`chaos`, `minimal`, `local`, `header`) end to
//! end: the real binary on a loopback port, asked by the real `dig`, so the
//! answers are checked the way an operator sees them (class, flags, sections
//! as dig prints them).

mod common;

use std::time::Duration;

use common::{TestServer, dig, dig_flags as flags, dig_section as section, eventually, require};

#[test]
fn chaos_answers_version_and_authors_in_ch_and_passes_other_queries_on() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    chaos clusterdns-e2e amy bob\n    whoami\n}\n",
        &[],
    );
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&tool, &srv, &[transport, "CH", "TXT", "version.bind"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert_eq!(
            section(&out, "ANSWER"),
            ["version.bind. 0 CH TXT \"clusterdns-e2e\""]
        );
        assert!(!flags(&out).contains(" aa"), "{out}");
    }
    let out = dig(&tool, &srv, &["CH", "TXT", "authors.bind"]);
    assert_eq!(
        section(&out, "ANSWER"),
        [
            "authors.bind. 0 CH TXT \"amy\"",
            "authors.bind. 0 CH TXT \"bob\""
        ]
    );
    // An IN query for the same name is whoami's: empty answer, client address in additional.
    let out = dig(&tool, &srv, &["TXT", "version.bind"]);
    assert!(section(&out, "ANSWER").is_empty(), "{out}");
    assert!(
        section(&out, "ADDITIONAL")
            .iter()
            .any(|l| l.starts_with("version.bind. 0 IN A 127.0.0.1")),
        "{out}"
    );
}

/// A block answering `www.example.org A` with data, an NS authority and glue,
/// and `*.nx.example.org` with NXDOMAIN and an SOA; `minimal` when asked.
fn template_block(minimal: bool) -> String {
    let minimal = if minimal { "    minimal\n" } else { "" };
    format!(
        ".:{{PORT}} {{\n    bind 127.0.0.1\n{minimal}\
         \x20   template IN A nx.example.org {{\n\
         \x20       rcode NXDOMAIN\n\
         \x20       authority \"example.org. 60 IN SOA ns.example.org. host.example.org. 1 7200 1800 86400 30\"\n\
         \x20       additional \"ns.example.org. 60 IN A 192.0.2.53\"\n\
         \x20   }}\n\
         \x20   template IN A example.org {{\n\
         \x20       answer \"{{{{ .Name }}}} 60 IN A 192.0.2.1\"\n\
         \x20       authority \"example.org. 60 IN NS ns.example.org.\"\n\
         \x20       additional \"ns.example.org. 60 IN A 192.0.2.53\"\n\
         \x20   }}\n}}\n"
    )
}

#[test]
fn minimal_strips_authority_and_additional_of_successes_only() {
    let Some(tool) = require("dig") else { return };
    let glue = ["ns.example.org. 60 IN A 192.0.2.53"];
    // Without minimal the template's sections are all sent: the baseline.
    let full = TestServer::spawn(&template_block(false), &[]);
    let out = dig(&tool, &full, &["www.example.org"]);
    assert_eq!(
        section(&out, "AUTHORITY"),
        ["example.org. 60 IN NS ns.example.org."]
    );
    assert_eq!(section(&out, "ADDITIONAL"), glue);

    let srv = TestServer::spawn(&template_block(true), &[]);
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&tool, &srv, &[transport, "www.example.org"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(flags(&out).contains(" aa"), "header kept: {out}");
        assert_eq!(
            section(&out, "ANSWER"),
            ["www.example.org. 60 IN A 192.0.2.1"]
        );
        assert!(section(&out, "AUTHORITY").is_empty(), "{out}");
        assert!(section(&out, "ADDITIONAL").is_empty(), "{out}");
    }
    // A negative answer keeps its SOA (and the rest) untouched.
    let out = dig(&tool, &srv, &["a.nx.example.org"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert_eq!(section(&out, "AUTHORITY").len(), 1, "{out}");
    assert!(section(&out, "AUTHORITY")[0].contains(" IN SOA "), "{out}");
    assert_eq!(section(&out, "ADDITIONAL"), glue);
}

#[test]
fn local_answers_localhost_and_loopback_reverse_and_counts_subdomains() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    prometheus 127.0.0.1:{METRICS}\n    local\n    whoami\n}\n",
        &[],
    );
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&tool, &srv, &[transport, "localhost"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        assert_eq!(
            section(&out, "ANSWER"),
            ["localhost. 604800 IN A 127.0.0.1"]
        );
    }
    let out = dig(&tool, &srv, &["AAAA", "web.localhost"]);
    assert_eq!(
        section(&out, "ANSWER"),
        ["web.localhost. 604800 IN AAAA ::1"]
    );
    let out = dig(&tool, &srv, &["-x", "127.0.0.1"]);
    assert_eq!(
        section(&out, "ANSWER"),
        ["1.0.0.127.in-addr.arpa. 604800 IN PTR localhost."]
    );
    let out = dig(&tool, &srv, &["-x", "127.0.0.2"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert_eq!(
        section(&out, "AUTHORITY"),
        ["127.in-addr.arpa. 604800 IN SOA localhost. root.localhost. 1 0 0 0 604800"]
    );
    // Not a local name: whoami (the next plugin) answers it.
    let out = dig(&tool, &srv, &["example.org"]);
    assert!(
        section(&out, "ADDITIONAL")
            .iter()
            .any(|l| l.starts_with("example.org. 0 IN A 127.0.0.1")),
        "{out}"
    );
    // web.localhost. counted once; localhost. itself is not counted.
    let line = "coredns_local_localhost_requests_total 1";
    let metrics = eventually(Duration::from_secs(10), || {
        let (_, text) = srv.http_get(srv.metrics_port, "/metrics")?;
        text.lines().any(|l| l == line).then_some(text)
    });
    assert!(metrics.is_some(), "no '{line}' in /metrics");
}

#[test]
fn header_forces_response_flags_over_the_writer_s() {
    let Some(tool) = require("dig") else { return };
    // whoami answers authoritatively without RA; header turns both around.
    let block = |rules: &str| {
        format!(".:{{PORT}} {{\n    bind 127.0.0.1\n    header {{\n{rules}    }}\n    whoami\n}}\n")
    };
    let plain = TestServer::spawn(&block("        query set rd\n"), &[]);
    let out = dig(&tool, &plain, &["example.org"]);
    let f = flags(&out);
    assert!(f.contains(" aa") && !f.contains(" ra"), "baseline: {out}");

    let srv = TestServer::spawn(
        &block("        response set ra\n        response clear aa\n"),
        &[],
    );
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&tool, &srv, &[transport, "example.org"]);
        assert!(out.contains("status: NOERROR"), "{out}");
        let f = flags(&out);
        assert!(f.contains(" ra") && !f.contains(" aa"), "{out}");
        assert!(f.contains(" rd"), "RD echoes the query: {out}");
    }
}

#[test]
fn nsid_answers_dig_nsid_and_bufsize_caps_the_advertised_size() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    nsid replica-7\n    bufsize 1220\n    whoami\n}\n",
        &[],
    );
    let out = dig(&tool, &srv, &["+nsid", "+bufsize=4096", "A", "example.org"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("; NSID: "), "{out}");
    assert!(out.contains("(\"replica-7\")"), "{out}");
    assert!(
        out.contains("; EDNS: version: 0, flags:; udp: 1220"),
        "{out}"
    );
    // Without +nsid no NSID; a smaller size is left alone.
    let out = dig(&tool, &srv, &["+bufsize=1000", "A", "example.org"]);
    assert!(!out.contains("NSID"), "{out}");
    assert!(out.contains("udp: 1000"), "{out}");
}

#[test]
fn acl_blocks_filters_and_drops_by_client_address() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    acl {\n        block net 127.0.0.2\n        \
         filter type A net 127.0.0.3\n        drop net 127.0.0.4\n    }\n    whoami\n}\n",
        &[],
    );
    // Allowed: whoami answers (the client address in the additional section).
    let out = dig(&tool, &srv, &["-b", "127.0.0.1", "A", "example.org"]);
    assert!(
        section(&out, "ADDITIONAL")
            .iter()
            .any(|l| l.contains("IN A 127.0.0.1")),
        "{out}"
    );
    let out = dig(&tool, &srv, &["-b", "127.0.0.2", "A", "example.org"]);
    assert!(out.contains("status: REFUSED"), "{out}");
    assert!(out.contains("EDE: 15 (Blocked)"), "{out}");
    let out = dig(&tool, &srv, &["-b", "127.0.0.3", "A", "example.org"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("EDE: 17 (Filtered)"), "{out}");
    assert!(section(&out, "ADDITIONAL").is_empty(), "{out}");
    // Only A is filtered for 127.0.0.3.
    let out = dig(&tool, &srv, &["-b", "127.0.0.3", "TXT", "example.org"]);
    assert!(!out.contains("EDE"), "{out}");
    // Dropped: no response at all (dig gives up after its one try).
    assert!(
        common::try_dig(&tool, &srv, &["-b", "127.0.0.4", "A", "example.org"]).is_none(),
        "a dropped query got a response"
    );
}

#[test]
fn template_ederror_reaches_dig_as_an_extended_dns_error() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::spawn(
        ".:{PORT} {\n    bind 127.0.0.1\n    template IN A blocked.example {\n        \
         rcode NXDOMAIN\n        ederror 15 \"ads are blocked\"\n    }\n}\n",
        &[],
    );
    let out = dig(&tool, &srv, &["A", "x.blocked.example"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(
        out.contains("EDE: 15 (Blocked): (ads are blocked)"),
        "{out}"
    );
    // Without EDNS there is no OPT record to carry it.
    let out = dig(&tool, &srv, &["+noedns", "A", "x.blocked.example"]);
    assert!(
        out.contains("status: NXDOMAIN") && !out.contains("EDE"),
        "{out}"
    );
}

#[test]
fn dns64_synthesizes_aaaa_for_a_cluster_service_with_only_an_ipv4_address() {
    let Some(tool) = require("dig") else { return };
    let yaml = std::fs::read_to_string(common::repo().join("config/demo-cluster.yaml")).unwrap();
    let srv = TestServer::start(
        ".:{PORT} {\n    bind 127.0.0.1\n    dns64 {\n        allow_ipv4\n    }\n    \
         kubernetes cluster.local {\n        manifests demo-cluster.yaml\n    }\n}\n",
        &[("demo-cluster.yaml", &yaml)],
    );
    let out = dig(
        &tool,
        &srv,
        &["AAAA", "nginx-service.default.svc.cluster.local"],
    );
    assert_eq!(
        section(&out, "ANSWER"),
        ["nginx-service.default.svc.cluster.local. 5 IN AAAA 64:ff9b::a60:64"],
        "{out}"
    );
    // The A answer itself is untouched.
    let out = dig(
        &tool,
        &srv,
        &["A", "nginx-service.default.svc.cluster.local"],
    );
    assert_eq!(
        section(&out, "ANSWER"),
        ["nginx-service.default.svc.cluster.local. 5 IN A 10.96.0.100"]
    );
}
