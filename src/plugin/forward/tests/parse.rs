//! `forward` parse tables: every option good and bad, errors with positions.

use std::path::PathBuf;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::Name;

use super::parse_forward;
use crate::plugin::forward::{
    ClientTls, DEFAULT_EXPIRE, ForwardConfig, Policy, UpstreamSpec, rcode, rcode_name,
};

fn addr(s: &str) -> UpstreamSpec {
    UpstreamSpec::Addr(s.parse().unwrap())
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

#[test]
fn the_short_form_gets_coredns_defaults() {
    let c = parse_forward("forward . 1.2.3.4").unwrap();
    assert_eq!(
        c,
        ForwardConfig {
            from: Name::root(),
            to: vec![addr("1.2.3.4:53")],
            except: vec![],
            force_tcp: false,
            prefer_udp: false,
            max_fails: 2,
            health_check: Duration::from_millis(500),
            health_check_rd: true,
            health_check_domain: Name::root(),
            policy: Policy::Random,
            max_concurrent: 0,
            next: vec![],
            failover: vec![],
            max_connect_attempts: 0,
            failfast_all_unhealthy_upstreams: false,
            tls: ClientTls::default(),
            tls_servername: None,
            expire: DEFAULT_EXPIRE,
            at: "/etc/coredns/Corefile:2:5".into(),
        }
    );
}

#[test]
fn upstreams_are_addresses_with_port_53_by_default_or_resolv_conf_paths() {
    let c = parse_forward(
        "forward Example.ORG dns://10.0.0.1:1053 [::1]:5353 2001:db8::1 [2001:db8::2] \
         /etc/resolv.conf ./upstreams.conf",
    )
    .unwrap();
    assert_eq!(c.from, name("example.org."));
    assert_eq!(
        c.to,
        vec![
            addr("10.0.0.1:1053"),
            addr("[::1]:5353"),
            addr("[2001:db8::1]:53"),
            addr("[2001:db8::2]:53"),
            UpstreamSpec::ResolvConf {
                path: PathBuf::from("/etc/resolv.conf"),
                at: "/etc/coredns/Corefile:2:82".into(),
            },
            UpstreamSpec::ResolvConf {
                path: PathBuf::from("/etc/coredns/./upstreams.conf"),
                at: "/etc/coredns/Corefile:2:99".into(),
            },
        ]
    );
}

#[test]
fn every_block_option_is_read() {
    let c = parse_forward(
        "forward . 1.1.1.1 {
            except Example.com internal.local.
            force_tcp
            prefer_udp
            max_fails 5
            health_check 1500ms no_rec domain health.example.org
            policy round_robin
            max_concurrent 1000
            next NXDOMAIN servfail
            failover SERVFAIL REFUSED
            max_connect_attempts 3
            failfast_all_unhealthy_upstreams
        }",
    )
    .unwrap();
    assert_eq!(
        c.except,
        vec![name("example.com."), name("internal.local.")]
    );
    assert!(c.force_tcp && c.prefer_udp && c.failfast_all_unhealthy_upstreams);
    assert_eq!(c.max_fails, 5);
    assert_eq!(c.health_check, Duration::from_millis(1500));
    assert!(!c.health_check_rd);
    assert_eq!(c.health_check_domain, name("health.example.org."));
    assert_eq!(c.policy, Policy::RoundRobin);
    assert_eq!(c.max_concurrent, 1000);
    assert_eq!(c.next, vec![ResponseCode::NXDomain, ResponseCode::ServFail]);
    assert_eq!(
        c.failover,
        vec![ResponseCode::ServFail, ResponseCode::Refused]
    );
    assert_eq!(c.max_connect_attempts, 3);
    let seq = parse_forward("forward . 1.1.1.1 {\n policy sequential\n}").unwrap();
    assert_eq!(seq.policy, Policy::Sequential);
    let rnd = parse_forward("forward . 1.1.1.1 {\n policy random\n health_check 2s\n}").unwrap();
    assert_eq!(rnd.policy, Policy::Random);
    assert!(rnd.health_check_rd);
}

/// Directive-level errors: (directive, substring the error points at, message).
/// The directive sits at line 2, column 5.
const BAD_DIRECTIVES: &[(&str, &str, &str)] = &[
    ("forward", "forward", "forward: missing argument: FROM"),
    ("forward .", ".", "forward: missing argument: TO"),
    (
        "forward . tls://dns.quad9.net",
        "tls://",
        "forward: 'tls://dns.quad9.net': a tls:// upstream is an IP address, IP:PORT or [IPv6]:PORT",
    ),
    (
        "forward . 1.1.1.1 https://dns.example/q",
        "https",
        "forward: 'https' is not supported as a destination protocol (dns://, tls://)",
    ),
    (
        "forward . dns.google",
        "dns.google",
        "forward: 'dns.google' is not an IP address, IP:PORT or a resolv.conf file path",
    ),
    (
        "forward . 1.1.1.1:99999",
        "1.1.1.1:",
        "forward: '1.1.1.1:99999' is not an IP address, IP:PORT or a resolv.conf file path",
    ),
    (
        "forward 10.0.0.0/8 1.1.1.1",
        "10.0",
        "forward: '10.0.0.0/8': CIDR zones are not supported, write the reverse zone",
    ),
    (
        "forward . 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 1.0.0.9 \
         1.0.0.10 1.0.0.11 1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16",
        "1.0.0.16",
        "forward: more than 15 upstreams",
    ),
];

#[test]
fn bad_directives_are_errors_at_the_offending_token() {
    for (line, at, msg) in BAD_DIRECTIVES {
        let col = 5 + line.find(at).unwrap();
        let want = format!("/etc/coredns/Corefile:2:{col}: {msg}");
        assert_eq!(parse_forward(line).unwrap_err(), want, "{line}");
    }
}

/// Block-line errors: (line, substring the error points at, message). The
/// line sits at line 3, column 5.
const BAD_LINES: &[(&str, &str, &str)] = &[
    ("bogus 1", "bogus", "forward: unknown property 'bogus'"),
    (
        "except",
        "except",
        "forward: except: missing argument: IGNORED_NAMES",
    ),
    (
        "except a..b",
        "a..b",
        "forward: except: bad domain name 'a..b'",
    ),
    (
        "force_tcp yes",
        "yes",
        "forward: force_tcp: unexpected argument 'yes'",
    ),
    (
        "prefer_udp 1",
        "1",
        "forward: prefer_udp: unexpected argument '1'",
    ),
    (
        "failfast_all_unhealthy_upstreams now",
        "now",
        "forward: failfast_all_unhealthy_upstreams: unexpected argument 'now'",
    ),
    (
        "expire 30s",
        "expire",
        "forward: expire: 'expire' applies to tls:// upstreams and this forward has none (plain upstreams use a fresh socket per exchange); remove the line or use tls://",
    ),
    (
        "max_fails",
        "max_fails",
        "forward: max_fails: missing argument: INTEGER",
    ),
    (
        "max_fails -1",
        "-1",
        "forward: max_fails: '-1' is not a number",
    ),
    (
        "max_fails 2 3",
        "3",
        "forward: max_fails: unexpected argument '3'",
    ),
    (
        "max_concurrent lots",
        "lots",
        "forward: max_concurrent: 'lots' is not a number",
    ),
    (
        "max_connect_attempts 99999999999",
        "999",
        "forward: max_connect_attempts: 99999999999 is out of range 0..4294967295",
    ),
    (
        "health_check",
        "health_check",
        "forward: health_check: missing argument: DURATION",
    ),
    (
        "health_check fast",
        "fast",
        "forward: health_check: invalid duration 'fast' (use e.g. 30s, 1m30s, 500ms)",
    ),
    (
        "health_check 1s rec",
        "rec",
        "forward: health_check: unknown option 'rec' (no_rec, domain FQDN)",
    ),
    (
        "health_check 1s domain",
        "domain",
        "forward: health_check: missing argument: FQDN",
    ),
    (
        "policy",
        "policy",
        "forward: policy: missing argument: random|round_robin|sequential",
    ),
    (
        "policy fastest",
        "fastest",
        "forward: policy: unknown policy 'fastest' (random, round_robin, sequential)",
    ),
    (
        "policy random sequential",
        "sequential",
        "forward: policy: unexpected argument 'sequential'",
    ),
    ("next", "next", "forward: next: missing argument: RCODE"),
    (
        "next NXDOMAIN NOPE",
        "NOPE",
        "forward: next: 'NOPE' is not a valid rcode",
    ),
    (
        "failover",
        "failover",
        "forward: failover: missing argument: RCODE",
    ),
    (
        "failover SERVFAIL NOERROR",
        "NOERROR",
        "forward: failover: NOERROR cannot be used in failover",
    ),
    (
        "tls cert.pem key.pem ca.pem",
        "tls",
        "forward: tls: 'tls' applies to tls:// upstreams and this forward has none (plain upstreams use a fresh socket per exchange); remove the line or use tls://",
    ),
    (
        "tls_servername cloudflare-dns.com",
        "tls_servername",
        "forward: tls_servername: 'tls_servername' applies to tls:// upstreams and this forward has none (plain upstreams use a fresh socket per exchange); remove the line or use tls://",
    ),
];

#[test]
fn tls_upstreams_take_port_853_and_the_tls_options() {
    let c = parse_forward(
        "forward . tls://9.9.9.9 tls://[2620:fe::fe]:8853 1.1.1.1 {\n tls_servername dns.quad9.net\n expire 30s\n}",
    )
    .unwrap();
    assert_eq!(
        c.to,
        vec![
            UpstreamSpec::Tls("9.9.9.9:853".parse().unwrap()),
            UpstreamSpec::Tls("[2620:fe::fe]:8853".parse().unwrap()),
            addr("1.1.1.1:53"),
        ]
    );
    assert_eq!(c.tls_servername.as_deref(), Some("dns.quad9.net"));
    assert_eq!(c.expire, Duration::from_secs(30));
    assert_eq!(c.tls, ClientTls::default(), "no tls line: system roots");
    let dir = PathBuf::from("/etc/coredns");
    // CoreDNS's 0..3 arguments: [CA], [CERT KEY], [CERT KEY CA]; paths from the Corefile's directory.
    let cases: &[(&str, ClientTls)] = &[
        ("tls", ClientTls::default()),
        (
            "tls ca.pem",
            ClientTls {
                cert_key: None,
                ca: Some(dir.join("ca.pem")),
            },
        ),
        (
            "tls c.pem k.pem",
            ClientTls {
                cert_key: Some((dir.join("c.pem"), dir.join("k.pem"))),
                ca: None,
            },
        ),
        (
            "tls /c.pem k.pem ca.pem",
            ClientTls {
                cert_key: Some((PathBuf::from("/c.pem"), dir.join("k.pem"))),
                ca: Some(dir.join("ca.pem")),
            },
        ),
    ];
    for (line, want) in cases {
        let c = parse_forward(&format!("forward . tls://9.9.9.9 {{\n {line}\n}}")).unwrap();
        assert_eq!(&c.tls, want, "{line}");
        assert_eq!(c.expire, DEFAULT_EXPIRE);
    }
    let bad: &[(&str, &str)] = &[
        (
            "tls a b c d",
            "tls takes at most 3 arguments: [CERT KEY] [CA]",
        ),
        ("tls_servername", "missing argument: NAME"),
        ("tls_servername a..b", "'a..b' is not a server name"),
        ("expire 0s", "expire must be more than 0"),
        ("expire soon", "expire"),
    ];
    for (line, msg) in bad {
        let e = parse_forward(&format!("forward . tls://9.9.9.9 {{\n {line}\n}}")).unwrap_err();
        assert!(e.contains(msg), "{line}: {e}");
        assert!(e.starts_with("/etc/coredns/Corefile:3:"), "{line}: {e}");
    }
}

#[test]
fn bad_block_lines_are_errors_at_the_offending_token() {
    for (line, at, msg) in BAD_LINES {
        let col = 5 + line.find(at).unwrap();
        let got =
            parse_forward(&format!("forward . 1.1.1.1 {{\n    {line}\n    }}")).expect_err(line);
        assert!(
            got.starts_with(&format!("/etc/coredns/Corefile:3:{col}: {msg}")),
            "{line}: got {got}"
        );
    }
}

#[test]
fn rcode_names_are_miekg_names_both_ways() {
    assert_eq!(rcode("nxdomain"), Some(ResponseCode::NXDomain));
    assert_eq!(rcode("NOTIMP"), Some(ResponseCode::NotImp));
    assert_eq!(rcode("BADCOOKIE"), Some(ResponseCode::BADCOOKIE));
    assert_eq!(rcode("NOPE"), None);
    assert_eq!(rcode_name(ResponseCode::NoError), "NOERROR");
    assert_eq!(rcode_name(ResponseCode::ServFail), "SERVFAIL");
    assert_eq!(rcode_name(ResponseCode::Refused), "REFUSED");
    assert_eq!(rcode_name(ResponseCode::Unknown(4000)), "4000");
}
