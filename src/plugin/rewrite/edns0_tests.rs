//! Parse, apply and serve tables for `rewrite edns0` rules.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::tests::{Fake, block, query};
use super::*;
use crate::corefile::Dispenser;
use crate::dns::Transport;
use crate::plugin::Chain;

fn rule(src: &str) -> Rule {
    parse(&mut Dispenser::new(&block(src)[0])).expect("rule")
}

fn edns0(src: &str) -> (Mode, Edns0Rule) {
    let r = rule(src);
    match r.kind {
        RuleKind::Edns0(e) => (r.mode, e),
        other => panic!("{src}: not an edns0 rule: {other:?}"),
    }
}

fn bytes(b: &[u8]) -> LocalData {
    LocalData::Bytes(b.into())
}

#[test]
fn edns0_lines_parse_as_coredns_reads_them() {
    use Action::*;
    let local = |code, data| Edns0Option::Local { code, data };
    let cases = [
        (
            "rewrite edns0 local set 0xffee abcd",
            Mode::Stop,
            Set,
            local(0xffee, bytes(b"abcd")),
            false,
        ),
        (
            "rewrite continue edns0 local replace 65518 0x61626364 revert",
            Mode::Continue,
            Replace,
            local(0xffee, bytes(b"abcd")),
            true,
        ),
        (
            "rewrite edns0 LOCAL APPEND 0o17 0x",
            Mode::Stop,
            Append,
            local(15, bytes(b"")),
            false,
        ),
        (
            "rewrite edns0 local set 010 {client_ip}",
            Mode::Stop,
            Set,
            local(8, LocalData::Var(Variable::ClientIp)),
            false,
        ),
        (
            "rewrite edns0 local set 0xffee {qname}",
            Mode::Stop,
            Set,
            local(0xffee, LocalData::Var(Variable::Qname)),
            false,
        ),
        (
            "rewrite edns0 local unset 0xffee",
            Mode::Stop,
            Unset,
            local(0xffee, bytes(b"")),
            false,
        ),
        (
            "rewrite edns0 nsid append revert",
            Mode::Stop,
            Append,
            Edns0Option::Nsid,
            true,
        ),
        (
            "rewrite edns0 nsid unset",
            Mode::Stop,
            Unset,
            Edns0Option::Nsid,
            false,
        ),
        (
            "rewrite edns0 subnet set 24 56",
            Mode::Stop,
            Set,
            Edns0Option::Subnet { v4: 24, v6: 56 },
            false,
        ),
        (
            "rewrite edns0 subnet replace 0x20 128 revert",
            Mode::Stop,
            Replace,
            Edns0Option::Subnet { v4: 32, v6: 128 },
            true,
        ),
        (
            "rewrite edns0 subnet unset",
            Mode::Stop,
            Unset,
            Edns0Option::Subnet { v4: 0, v6: 0 },
            false,
        ),
        (
            "rewrite continue {\n edns0 local set 0xffee {protocol}\n}",
            Mode::Continue,
            Set,
            local(0xffee, LocalData::Var(Variable::Protocol)),
            false,
        ),
    ];
    for (src, mode, action, option, revert) in cases {
        let want = Edns0Rule {
            action,
            option,
            revert,
        };
        assert_eq!(edns0(src), (mode, want), "{src}");
    }
}

#[test]
fn bad_edns0_lines_are_errors_at_the_offending_token() {
    let cases = [
        (
            "rewrite edns0 local",
            "Corefile:2:15: rewrite: edns0: too few arguments (local|nsid|subnet ACTION ...)",
        ),
        (
            "rewrite edns0 local add 0xffee abcd",
            "Corefile:2:21: rewrite: edns0: invalid action 'add' (use set, replace, append or unset)",
        ),
        (
            "rewrite edns0 cookie set 0xffee abcd",
            "Corefile:2:15: rewrite: edns0: invalid rule type 'cookie' (use local, nsid or subnet)",
        ),
        (
            "rewrite edns0 local set 0xffee",
            "Corefile:2:25: rewrite: edns0 local set: takes CODE DATA",
        ),
        (
            "rewrite edns0 local set 0xffee abcd extra",
            "Corefile:2:37: rewrite: edns0 local set: takes CODE DATA",
        ),
        (
            "rewrite edns0 local unset 0xffee revert",
            "Corefile:2:34: rewrite: edns0 local unset: takes CODE",
        ),
        (
            "rewrite edns0 nsid set x",
            "Corefile:2:24: rewrite: edns0 nsid set: takes no arguments",
        ),
        (
            "rewrite edns0 local append",
            "Corefile:2:21: rewrite: edns0 local append: takes CODE DATA",
        ),
        (
            "rewrite edns0 subnet set 24",
            "Corefile:2:26: rewrite: edns0 subnet set: takes V4BITMASK V6BITMASK",
        ),
        (
            "rewrite edns0 subnet unset 24 56",
            "Corefile:2:28: rewrite: edns0 subnet unset: takes no arguments",
        ),
        (
            "rewrite edns0 subnet set 33 56",
            "Corefile:2:26: rewrite: edns0 subnet: invalid IPv4 bit mask length '33' (0-32)",
        ),
        (
            "rewrite edns0 subnet set 24 129",
            "Corefile:2:29: rewrite: edns0 subnet: invalid IPv6 bit mask length '129' (0-128)",
        ),
        (
            "rewrite edns0 local set 0x10000 abcd",
            "Corefile:2:25: rewrite: edns0 local: invalid option code '0x10000' (0-65535, e.g. 0xffee)",
        ),
        (
            "rewrite edns0 local set ffee abcd",
            "Corefile:2:25: rewrite: edns0 local: invalid option code 'ffee' (0-65535, e.g. 0xffee)",
        ),
        (
            "rewrite edns0 local set 0xffee 0xabc",
            "Corefile:2:32: rewrite: edns0 local: invalid hex data '0xabc' (an even number of hex digits after 0x)",
        ),
        (
            "rewrite edns0 local set 0xffee 0x+f",
            "Corefile:2:32: rewrite: edns0 local: invalid hex data '0x+f' (an even number of hex digits after 0x)",
        ),
        (
            "rewrite edns0 local set 0xffee {server_ip}",
            "Corefile:2:32: rewrite: edns0 local: {server_ip} is not supported by clusterdns: plugins do not see the address a query arrived at",
        ),
        (
            "rewrite edns0 local set 0xffee {server_port}",
            "Corefile:2:32: rewrite: edns0 local: {server_port} is not supported by clusterdns: plugins do not see the address a query arrived at",
        ),
        (
            "rewrite edns0 local set 0xffee {kubernetes/client-namespace}",
            "Corefile:2:32: rewrite: edns0 local: metadata label {kubernetes/client-namespace} is not supported by clusterdns: there is no metadata plugin",
        ),
        (
            "rewrite edns0 local set 0xffee {nope}",
            "Corefile:2:32: rewrite: edns0 local: unsupported variable {nope} (use {qname}, {qtype}, {client_ip}, {client_port} or {protocol})",
        ),
    ];
    for (src, want) in cases {
        let d = &block(src)[0];
        let e = parse(&mut Dispenser::new(d)).unwrap_err();
        assert_eq!(e.to_string(), want, "{src}");
    }
}

#[test]
fn client_subnet_keeps_the_prefix_in_as_few_octets_as_it_needs() {
    let cases: [(&str, u8, u8, &[u8]); 7] = [
        ("10.1.2.3", 24, 56, &[0, 1, 24, 0, 10, 1, 2]),
        ("10.1.255.3", 20, 56, &[0, 1, 20, 0, 10, 1, 0xf0]),
        ("10.1.2.3", 32, 56, &[0, 1, 32, 0, 10, 1, 2, 3]),
        ("10.1.2.3", 0, 56, &[0, 1, 0, 0]),
        ("::ffff:10.1.2.3", 24, 56, &[0, 1, 24, 0, 10, 1, 2]),
        (
            "2001:db8:abcd:12ff::1",
            24,
            56,
            &[0, 2, 56, 0, 0x20, 0x01, 0x0d, 0xb8, 0xab, 0xcd, 0x12],
        ),
        (
            "2001:db8:abcd:12ff::1",
            24,
            60,
            &[0, 2, 60, 0, 0x20, 0x01, 0x0d, 0xb8, 0xab, 0xcd, 0x12, 0xf0],
        ),
    ];
    for (ip, v4, v6, want) in cases {
        let ip: IpAddr = ip.parse().expect("ip");
        assert_eq!(&*client_subnet(ip, v4, v6), want, "{ip} /{v4} /{v6}");
    }
}

type Opts = Vec<(u16, Vec<u8>)>;

fn options_of(q: &Query) -> Opts {
    q.edns_options
        .iter()
        .flat_map(|v| v.iter())
        .map(|(c, d)| (*c, d.to_vec()))
        .collect()
}

#[test]
fn actions_replace_add_or_remove_the_matching_option() {
    let other = (0x0a0a_u16, b"keep".to_vec());
    let old = (0xffee_u16, b"old".to_vec());
    let new = (0xffee_u16, b"abcd".to_vec());
    let ecs = (8_u16, vec![0, 1, 24, 0, 10, 1, 2]);
    let nsid = (3_u16, vec![]);
    // (rule, options before, options after, rewrote)
    let cases: Vec<(&str, Opts, Opts, bool)> = vec![
        (
            "edns0 local set 0xffee abcd",
            vec![],
            vec![new.clone()],
            true,
        ),
        (
            "edns0 local set 0xffee abcd",
            vec![other.clone(), old.clone(), old.clone()],
            vec![other.clone(), new.clone(), old.clone()],
            true,
        ),
        (
            "edns0 local replace 0xffee abcd",
            vec![other.clone()],
            vec![other.clone()],
            false,
        ),
        (
            "edns0 local replace 0xffee abcd",
            vec![old.clone()],
            vec![new.clone()],
            true,
        ),
        (
            "edns0 local append 0xffee abcd",
            vec![other.clone()],
            vec![other.clone(), new.clone()],
            true,
        ),
        (
            "edns0 local append 0xffee abcd",
            vec![old.clone()],
            vec![old.clone()],
            false,
        ),
        (
            "edns0 local unset 0xffee",
            vec![old.clone(), other.clone(), old.clone()],
            vec![other.clone()],
            true,
        ),
        ("edns0 local unset 0xffee", vec![], vec![], true),
        ("edns0 subnet set 24 56", vec![], vec![ecs.clone()], true),
        (
            "edns0 subnet replace 24 56",
            vec![(8, vec![0, 1, 32, 0, 1, 2, 3, 4])],
            vec![ecs.clone()],
            true,
        ),
        (
            "edns0 subnet unset",
            vec![ecs.clone(), other.clone()],
            vec![other.clone()],
            true,
        ),
        (
            "edns0 nsid set",
            vec![(3, b"x".to_vec())],
            vec![nsid.clone()],
            true,
        ),
        ("edns0 nsid append", vec![], vec![nsid.clone()], true),
        ("edns0 nsid unset", vec![nsid.clone()], vec![], true),
        (
            "edns0 local set 0xffee {qname}",
            vec![],
            vec![(0xffee, b"WWW.example.org.".to_vec())],
            true,
        ),
        (
            "edns0 local set 0xffee {qtype}",
            vec![],
            vec![(0xffee, vec![0, 28])],
            true,
        ),
        (
            "edns0 local set 0xffee {client_ip}",
            vec![],
            vec![(0xffee, vec![10, 1, 2, 3])],
            true,
        ),
        (
            "edns0 local set 0xffee {client_port}",
            vec![],
            vec![(0xffee, vec![0x14, 0xe9])],
            true,
        ),
        (
            "edns0 local set 0xffee {protocol}",
            vec![],
            vec![(0xffee, b"tcp".to_vec())],
            true,
        ),
    ];
    for (src, before, after, rewrote) in cases {
        let (_, r) = edns0(&format!("rewrite {src}"));
        let mut q = query("WWW.example.org.", RecordType::AAAA, "10.1.2.3:5353");
        q.transport = Transport::Tcp;
        q.nsid = before.iter().any(|(c, _)| *c == 3);
        if !before.is_empty() {
            q.edns_options = Some(Box::new(
                before.iter().map(|(c, d)| (*c, d.clone().into())).collect(),
            ));
        }
        assert_eq!(r.apply(&mut q), rewrote, "{src} on {before:?}");
        assert_eq!(options_of(&q), after, "{src} on {before:?}");
        // No empty list is left behind: forward would send an OPT for nothing.
        assert_eq!(q.edns_options.is_none(), after.is_empty(), "{src}");
        assert_eq!(q.nsid, after.iter().any(|(c, _)| *c == 3), "{src}");
    }
}

#[test]
fn the_client_ip_variable_is_16_octets_for_ipv6_clients() {
    let (_, r) = edns0("rewrite edns0 local set 0xffee {client_ip}");
    let mut q = query("a.example.org.", RecordType::A, "[2001:db8::7]:53");
    assert!(r.apply(&mut q));
    let ip: std::net::Ipv6Addr = "2001:db8::7".parse().expect("ip");
    assert_eq!(options_of(&q), vec![(0xffee, ip.octets().to_vec())]);
}

/// Serve `qname` through `rewrite` (`src`) to a plugin that records the options it saw.
async fn seen_options(src: &str, qname: &str) -> (Opts, bool) {
    let seen = Arc::new(Mutex::new(None));
    let record = seen.clone();
    let fake = Fake::new(move |q: &Query| {
        *record.lock().unwrap() = Some((options_of(q), q.nsid));
        Ok(Answer::rcode(ResponseCode::NoError))
    });
    let mut cfg = RewriteConfig::default();
    for d in block(src) {
        cfg.rules
            .push(parse(&mut Dispenser::new(&d)).expect("rule"));
    }
    let chain = Chain::new(vec![fake, Arc::new(Rewrite::new(&cfg))]);
    chain
        .serve(&query(qname, RecordType::A, "10.1.2.3:5353"))
        .await
        .expect("answer");
    let got = seen.lock().unwrap().take();
    got.expect("the next plugin was asked")
}

#[tokio::test]
async fn the_next_plugin_sees_the_rewritten_options_and_stop_and_continue_apply() {
    let a = (0xffee_u16, b"abcd".to_vec());
    let ecs = (8_u16, vec![0, 1, 24, 0, 10, 1, 2]);
    let cases: Vec<(&str, &str, Opts, bool)> = vec![
        (
            "rewrite edns0 local set 0xffee abcd",
            "x.org.",
            vec![a.clone()],
            false,
        ),
        // stop after a rule that rewrote: the subnet rule does not run.
        (
            "rewrite edns0 local set 0xffee abcd\nrewrite edns0 subnet set 24 56",
            "x.org.",
            vec![a.clone()],
            false,
        ),
        (
            "rewrite continue edns0 local set 0xffee abcd\nrewrite edns0 subnet set 24 56",
            "x.org.",
            vec![a.clone(), ecs.clone()],
            false,
        ),
        // A rule that did not rewrite does not stop the list.
        (
            "rewrite edns0 local replace 0xffee abcd\nrewrite edns0 nsid set",
            "x.org.",
            vec![(3, vec![])],
            true,
        ),
        // The qname variable sees an earlier rule's new name.
        (
            "rewrite continue name x.org. y.org.\nrewrite edns0 local set 0xffee {qname}",
            "x.org.",
            vec![(0xffee, b"y.org.".to_vec())],
            false,
        ),
    ];
    for (src, qname, want, nsid) in cases {
        assert_eq!(seen_options(src, qname).await, (want, nsid), "{src}");
    }
}
