//! The README's promises on the bundled demo cluster: `dig` answers from
//! config/Corefile + config/demo-cluster.yaml, and editing the manifests
//! changes the answers without a restart.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{TestServer, dig, dig_flags as flags, dig_section, eventually, lines, require};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn dig_answers_the_nginx_service_cluster_ip_with_aa_over_udp_and_tcp() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::demo();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(
            &tool,
            &srv,
            &[transport, "nginx-service.default.svc.cluster.local"],
        );
        assert!(out.contains("status: NOERROR"), "{out}");
        assert!(flags(&out).contains(" aa"), "AA flag missing: {out}");
        assert_eq!(
            dig_section(&out, "ANSWER"),
            ["nginx-service.default.svc.cluster.local. 30 IN A 10.96.0.100"]
        );
    }
}

#[test]
fn dig_srv_answers_port_80_to_the_service_name() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::demo();
    let out = dig(
        &tool,
        &srv,
        &[
            "SRV",
            "_service-port._tcp.nginx-service.default.svc.cluster.local",
        ],
    );
    assert_eq!(
        dig_section(&out, "ANSWER"),
        [
            "_service-port._tcp.nginx-service.default.svc.cluster.local. 30 IN SRV 0 100 80 nginx-service.default.svc.cluster.local."
        ]
    );
}

#[test]
fn dig_reverse_lookup_answers_the_ptr_over_udp_and_tcp() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::demo();
    for transport in ["+notcp", "+tcp"] {
        let out = dig(&tool, &srv, &[transport, "-x", "10.96.0.100"]);
        assert_eq!(
            dig_section(&out, "ANSWER"),
            ["100.0.96.10.in-addr.arpa. 30 IN PTR nginx-service.default.svc.cluster.local."]
        );
        assert!(flags(&out).contains(" aa"), "{out}");
    }
}

#[test]
fn dig_nxdomain_carries_the_soa() {
    let Some(tool) = require("dig") else { return };
    let srv = TestServer::demo();
    let out = dig(&tool, &srv, &["nope.default.svc.cluster.local"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains("AUTHORITY SECTION"), "{out}");
    let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        folded.contains("cluster.local. 30 IN SOA ns.dns.cluster.local. hostmaster.cluster.local."),
        "{out}"
    );
}

#[test]
fn demo_shapes_answer_as_documented() {
    let srv = TestServer::demo();
    let web = srv.udp("web.demo.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&web.answers),
        [
            "web.demo.svc.cluster.local. 30 IN A 10.244.1.10",
            "web.demo.svc.cluster.local. 30 IN A 10.244.2.11"
        ]
    );
    let web0 = srv.udp("web-0.web.demo.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&web0.answers),
        ["web-0.web.demo.svc.cluster.local. 30 IN A 10.244.1.10"]
    );
    let search = srv.udp("search.demo.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(
        lines(&search.answers),
        ["search.demo.svc.cluster.local. 30 IN CNAME example.org."]
    );
    let dual = srv.udp("dual.demo.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&dual.answers),
        ["dual.demo.svc.cluster.local. 30 IN AAAA fd00:10:96::50"]
    );
    let pod = srv.udp("10-244-1-5.default.pod.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&pod.answers),
        ["10-244-1-5.default.pod.cluster.local. 30 IN A 10.244.1.5"]
    );
}

/// Insert a fifth nginx endpoint into the demo manifests text.
fn scale_to_five(yaml: &str) -> String {
    let anchor = "  - addresses: [10.244.2.8]";
    assert!(yaml.contains(anchor), "demo manifests changed shape");
    yaml.replacen(
        anchor,
        "  - addresses: [10.244.3.9]\n    conditions: {ready: true}\n  - addresses: [10.244.2.8]",
        1,
    )
}

#[test]
fn editing_the_demo_manifests_changes_answers_without_a_restart() {
    // Scale nginx to 5 endpoints and watch the headless-style endpoint name appear,
    // then the SRV/endpoint set; the process is never restarted.
    let srv = TestServer::demo();
    let name = "10-244-3-9.nginx-service.default.svc.cluster.local.";
    assert_eq!(
        srv.udp(name, RecordType::A).metadata.response_code,
        ResponseCode::NXDomain
    );

    let path = srv.path("demo-cluster.yaml");
    let yaml = std::fs::read_to_string(&path).expect("read");
    let started = Instant::now();
    common::write(&path, &scale_to_five(&yaml));
    let answered = eventually(Duration::from_secs(10), || {
        let r = srv.udp(name, RecordType::A);
        (r.metadata.response_code == ResponseCode::NoError).then_some(r)
    })
    .expect("the new endpoint is answered after the edit");
    eprintln!("edit → answer took {:?}", started.elapsed());
    assert_eq!(
        lines(&answered.answers),
        [format!("{name} 30 IN A 10.244.3.9")]
    );

    // A broken edit keeps the last good state: wait until the server has read
    // (and rejected) it, then ask again.
    common::write(&path, "this: [is not: valid yaml");
    eventually(Duration::from_secs(10), || {
        srv.log()
            .contains("manifests: keeping the previous state")
            .then_some(())
    })
    .expect("the broken edit was read and rejected");
    let still = srv.udp(name, RecordType::A);
    assert_eq!(still.metadata.response_code, ResponseCode::NoError);
}

/// The dig tests above, run again without `dig` on PATH: outside CI each
/// passes with a loud SKIPPED line; with CI=true each fails.
#[test]
fn without_dig_the_dig_tests_skip_loudly_and_fail_in_ci() {
    let empty = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let run = |ci: Option<&str>| {
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--exact",
            "dig_nxdomain_carries_the_soa",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PATH", empty.path())
        .env_remove("CI");
        if let Some(v) = ci {
            cmd.env("CI", v);
        }
        let out = cmd.output().expect("run the test binary");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(None);
    assert!(ok, "outside CI a missing dig skips:\n{text}");
    assert!(text.contains("SKIPPED: `dig` is not installed"), "{text}");
    assert!(text.contains("1 passed"), "the test ran: {text}");
    for ci in ["true", "1"] {
        let (ok, text) = run(Some(ci));
        assert!(!ok, "CI={ci}: a missing dig must fail:\n{text}");
        assert!(text.contains("`dig` missing in CI"), "{text}");
    }
    let (ok, _) = run(Some("false"));
    assert!(ok, "CI=false is not CI");
}
