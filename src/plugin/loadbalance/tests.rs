use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{AAAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData};
use prometheus::Registry;

use super::source::Refresh;
use super::*;
use crate::corefile::{MemFs, parse_str};
use crate::plugin::build::{Families, TestCtx};

fn parse_text(directive: &str) -> std::result::Result<LoadbalanceConfig, String> {
    let text = format!(".:53 {{\n{directive}\n}}\n");
    let cf = parse_str(&text, Path::new("conf/Corefile"), &|_| None, &MemFs::new())
        .map_err(|e| e.to_string())?;
    parse(&mut Dispenser::new(&cf.blocks[0].directives[0])).map_err(|e| e.to_string())
}

fn rec_at(owner: &str, rdata: RData) -> Record {
    Record::from_rdata(Name::from_ascii(owner).unwrap(), 5, rdata)
}

fn rec(rdata: RData) -> Record {
    rec_at("x.example.", rdata)
}

fn a(ip: &str) -> Record {
    rec(RData::A(hickory_proto::rr::rdata::A(ip.parse().unwrap())))
}

fn a_at(owner: &str, ip: &str) -> Record {
    rec_at(
        owner,
        RData::A(hickory_proto::rr::rdata::A(ip.parse().unwrap())),
    )
}

fn types(rs: &[Record]) -> Vec<RecordType> {
    rs.iter().map(Record::record_type).collect()
}

fn data(rs: &[Record]) -> Vec<String> {
    rs.iter().map(|r| r.data.to_string()).collect()
}

fn query(name: &str, qtype: RecordType) -> Query {
    Query::new(
        Name::from_ascii(name).unwrap(),
        qtype,
        "127.0.0.1:1".parse().unwrap(),
        crate::dns::Transport::Udp,
    )
}

/// The weighted plugin over `file` (written to a temp dir) with `block`
/// lines, built in a fresh context; the dir and context live as long as it.
struct Weighted {
    lb: Loadbalance,
    path: std::path::PathBuf,
    ctx: TestCtx,
    _dir: tempfile::TempDir,
}

fn weighted(file: Option<&str>, block: &str) -> anyhow::Result<Weighted> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.txt");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
    }
    let mut cfg = parse_text(&format!("loadbalance weighted w.txt {{\n{block}\n}}")).unwrap();
    if let PolicyConfig::Weighted { path: p, .. } = &mut cfg.policy {
        p.clone_from(&path);
    }
    let ctx = TestCtx::new(&Families::new(Registry::new()), &["."]);
    let lb = Loadbalance::build(&cfg, &ctx.ctx())?;
    Ok(Weighted {
        lb,
        path,
        ctx,
        _dir: dir,
    })
}

fn source(lb: &Loadbalance) -> &Arc<WeightSource> {
    match &lb.policy {
        Policy::Weighted(s) => s,
        Policy::RoundRobin => panic!("not weighted"),
    }
}

fn weight_of(lb: &Loadbalance, owner: &str, ip: &str) -> u8 {
    source(lb)
        .weights()
        .weight(&Name::from_ascii(owner).unwrap(), ip.parse().unwrap())
}

#[test]
fn options_parse_and_bad_ones_point_at_the_token() {
    let c = parse_text("loadbalance").unwrap();
    assert_eq!(
        (c.policy, c.prefer, c.limit_answers),
        (PolicyConfig::RoundRobin, vec![], None)
    );
    let c =
        parse_text("loadbalance round_robin {\n prefer 10.0.0.0/8 fd00::/8\n limit_answers 2\n}")
            .unwrap();
    assert_eq!(
        c.prefer,
        [
            IpNet::from_str("10.0.0.0/8").unwrap(),
            IpNet::from_str("fd00::/8").unwrap()
        ]
    );
    assert_eq!(c.limit_answers, Some(2));
    let cases = [
        (
            "loadbalance random",
            "conf/Corefile:2:13: loadbalance: unknown policy: 'random' (use round_robin or weighted)",
        ),
        (
            "loadbalance round_robin x",
            "conf/Corefile:2:25: loadbalance: unexpected argument 'x'",
        ),
        (
            "loadbalance {\n prefer\n}",
            "conf/Corefile:3:2: loadbalance: prefer: missing argument: CIDR",
        ),
        (
            "loadbalance {\n reload 10s\n}",
            "conf/Corefile:3:2: loadbalance: reload: only for the weighted policy",
        ),
        (
            "loadbalance {\n prefer 10.0.0.0/33\n}",
            "conf/Corefile:3:9: loadbalance: prefer: invalid CIDR '10.0.0.0/33': ",
        ),
        (
            "loadbalance {\n limit_answers 0\n}",
            "conf/Corefile:3:16: loadbalance: limit_answers: NUM_ANSWERS: 0 is out of range 1..4294967295",
        ),
    ];
    for (text, want) in cases {
        let got = parse_text(text).expect_err(text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn weighted_parses_its_file_relative_to_the_corefile_and_its_reload() {
    let ok = [
        (
            "loadbalance weighted w.txt",
            "conf/w.txt",
            DEFAULT_RELOAD,
            None,
        ),
        (
            "loadbalance weighted /etc/lb/w.txt {\n reload 10s\n}",
            "/etc/lb/w.txt",
            Duration::from_secs(10),
            None,
        ),
        (
            "loadbalance weighted sub/w.txt {\n reload 0\n limit_answers 1\n}",
            "conf/sub/w.txt",
            Duration::ZERO,
            Some(1),
        ),
        (
            "loadbalance weighted w.txt {\n reload 1m30s\n}",
            "conf/w.txt",
            Duration::from_secs(90),
            None,
        ),
    ];
    for (text, path, reload, limit) in ok {
        let c = parse_text(text).expect(text);
        assert_eq!(
            c.policy,
            PolicyConfig::Weighted {
                path: path.into(),
                reload
            },
            "{text}"
        );
        assert_eq!(c.limit_answers, limit, "{text}");
    }
    let bad = [
        (
            "loadbalance weighted",
            "conf/Corefile:2:13: loadbalance: missing argument: WEIGHTFILE",
        ),
        (
            "loadbalance weighted a b",
            "conf/Corefile:2:24: loadbalance: unexpected argument 'b'",
        ),
        (
            "loadbalance weighted w.txt {\n reload\n}",
            "conf/Corefile:3:2: loadbalance: reload: missing argument: DURATION",
        ),
        (
            "loadbalance weighted w.txt {\n reload soon\n}",
            "conf/Corefile:3:9: loadbalance: reload: DURATION: invalid duration 'soon'",
        ),
        (
            "loadbalance weighted w.txt {\n reload -1s\n}",
            "conf/Corefile:3:9: loadbalance: reload: DURATION: duration '-1s' is negative",
        ),
        (
            "loadbalance weighted w.txt {\n reload 10s 20s\n}",
            "conf/Corefile:3:13: loadbalance: reload: unexpected argument '20s'",
        ),
        (
            "loadbalance weighted w.txt {\n prefer 10.0.0.0/8\n}",
            "conf/Corefile:3:2: loadbalance: prefer: only for the round_robin policy",
        ),
        (
            "loadbalance weighted w.txt {\n weights 3\n}",
            "conf/Corefile:3:2: loadbalance: unknown property 'weights'",
        ),
    ];
    for (text, want) in bad {
        let got = parse_text(text).expect_err(text);
        assert!(got.starts_with(want), "{text}\n got: {got}\nwant: {want}");
    }
}

#[test]
fn round_robin_shuffles_addresses_and_keeps_the_set() {
    let lb = Loadbalance::round_robin(&parse_text("loadbalance").unwrap());
    let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    let mut orders = BTreeSet::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..50 {
        let mut ans = Answer::rcode(ResponseCode::NoError);
        ans.answers = ips.iter().map(|ip| a(ip)).collect();
        lb.balance(RecordType::A, &mut ans, &mut rng);
        let order = data(&ans.answers);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, ips);
        orders.insert(order);
    }
    assert!(orders.len() > 1, "50 shuffles of 4 records gave one order");
}

#[test]
fn mixed_sections_put_cnames_first_then_others_then_addresses_then_mx() {
    let target = Name::from_ascii("t.example.").unwrap();
    let mut rs = vec![
        a("10.0.0.1"),
        rec(RData::MX(MX::new(10, target.clone()))),
        rec(RData::TXT(TXT::new(vec!["x".into()]))),
        a("10.0.0.2"),
        rec(RData::CNAME(CNAME(target))),
    ];
    order::shuffle(&mut rs, &mut fastrand::Rng::new());
    use RecordType::{A as RA, CNAME as RC, MX as RM, TXT as RT};
    assert_eq!(types(&rs), [RC, RT, RA, RA, RM]);
}

#[test]
fn prefer_moves_matching_addresses_first_in_cidr_order() {
    let lb = Loadbalance::round_robin(
        &parse_text("loadbalance {\n prefer 10.2.0.0/16 10.1.0.0/16\n}").unwrap(),
    );
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..20 {
        let mut ans = Answer::rcode(ResponseCode::NoError);
        ans.answers = ["192.0.2.1", "10.1.0.1", "10.2.0.1", "192.0.2.2"]
            .iter()
            .map(|ip| a(ip))
            .collect();
        lb.balance(RecordType::A, &mut ans, &mut rng);
        assert_eq!(&data(&ans.answers)[..2], ["10.2.0.1", "10.1.0.1"]);
    }
}

/// A plugin answering a fixed answer, to put after loadbalance.
struct Fixed(Answer);

#[async_trait::async_trait]
impl Plugin for Fixed {
    fn name(&self) -> &'static str {
        "fixed"
    }
    async fn serve(&self, _q: &Query, _next: Next<'_>) -> Result<Answer> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn errors_and_limit_answers() {
    let ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    let mut nx = Answer::rcode(ResponseCode::NXDomain);
    nx.answers = ips.iter().map(|ip| a(ip)).collect();
    let lb = Loadbalance::round_robin(&parse_text("loadbalance {\n limit_answers 2\n}").unwrap());
    let q = query("x.example.", RecordType::A);
    let chain = crate::plugin::Chain::new(vec![Arc::new(lb.clone()), Arc::new(Fixed(nx.clone()))]);
    assert_eq!(
        chain.serve(&q).await.unwrap().answers,
        nx.answers,
        "only NOERROR is touched"
    );
    let mut ok = nx.clone();
    ok.rcode = ResponseCode::NoError;
    let chain = crate::plugin::Chain::new(vec![Arc::new(lb), Arc::new(Fixed(ok))]);
    assert_eq!(chain.serve(&q).await.unwrap().answers.len(), 2);
}

const WWW: &str = "www.example.com.";

/// How often each address came first in `runs` weighted answers of `ips`
/// (owned by `owner`), with a seeded random source.
fn first_counts(lb: &Loadbalance, owner: &str, ips: &[&str], runs: u32) -> BTreeMap<String, u32> {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut counts = BTreeMap::new();
    for _ in 0..runs {
        let mut ans = Answer::rcode(ResponseCode::NoError);
        ans.answers = ips.iter().map(|ip| a_at(owner, ip)).collect();
        lb.balance(RecordType::A, &mut ans, &mut rng);
        let mut got = data(&ans.answers);
        *counts.entry(got[0].clone()).or_default() += 1;
        got.sort();
        assert_eq!(got, ips, "the same records come back");
    }
    counts
}

/// `count` is within 15% (relative) of `want`.
fn near(count: u32, want: u32) -> bool {
    count.abs_diff(want) * 100 <= want * 15
}

#[test]
fn weighted_puts_addresses_first_in_proportion_to_their_weights() {
    let w = weighted(
        Some("www.example.com\n100.64.1.1 3\n100.64.1.2 1\n100.64.1.3 2\n"),
        "reload 0",
    )
    .unwrap();
    let ips = ["100.64.1.1", "100.64.1.2", "100.64.1.3"];
    let counts = first_counts(&w.lb, WWW, &ips, 6000);
    let want = [3000, 1000, 2000];
    for (ip, want) in ips.iter().zip(want) {
        let got = counts.get(*ip).copied().unwrap_or(0);
        assert!(
            near(got, want),
            "{ip}: {got} firsts, want ~{want}: {counts:?}"
        );
    }
    // The owner name matters (case aside): another name's addresses weigh 1
    // each, so the first one is uniform.
    let counts = first_counts(&w.lb, "WWW.Example.COM.", &ips, 6000);
    assert!(near(counts["100.64.1.1"], 3000), "{counts:?}");
    let counts = first_counts(&w.lb, "api.example.com.", &ips, 6000);
    for ip in ips {
        assert!(near(counts[ip], 2000), "{ip}: {counts:?}");
    }
}

#[test]
fn weighted_swaps_one_address_first_and_groups_the_section() {
    let w = weighted(Some("x.example\n10.0.0.3 255\n"), "reload 0").unwrap();
    let target = Name::from_ascii("t.example.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let mut firsts = BTreeSet::new();
    for _ in 0..200 {
        let mut ans = Answer::rcode(ResponseCode::NoError);
        ans.answers = vec![
            a("10.0.0.1"),
            rec(RData::MX(MX::new(10, target.clone()))),
            a("10.0.0.2"),
            rec(RData::CNAME(CNAME(target.clone()))),
            a("10.0.0.3"),
        ];
        ans.authority = vec![a("10.0.0.8"), a("10.0.0.9")];
        ans.additionals = vec![a("10.0.0.5"), a("10.0.0.6")];
        w.lb.balance(RecordType::A, &mut ans, &mut rng);
        use RecordType::{A as RA, CNAME as RC, MX as RM};
        assert_eq!(types(&ans.answers), [RC, RA, RA, RA, RM]);
        let addrs = data(&ans.answers[1..4]);
        // One swap: the chosen address trades places with the first.
        let want_rest = match addrs[0].as_str() {
            "10.0.0.1" => ["10.0.0.2", "10.0.0.3"],
            "10.0.0.2" => ["10.0.0.1", "10.0.0.3"],
            "10.0.0.3" => ["10.0.0.2", "10.0.0.1"],
            other => panic!("unexpected first address {other}"),
        };
        assert_eq!(addrs[1..], want_rest);
        firsts.insert(addrs[0].clone());
        assert_eq!(
            data(&ans.authority),
            ["10.0.0.8", "10.0.0.9"],
            "authority untouched"
        );
        assert_eq!(ans.additionals.len(), 2);
    }
    assert!(firsts.contains("10.0.0.3"));

    // Other query types are left alone entirely, as in CoreDNS.
    let mut ans = Answer::rcode(ResponseCode::NoError);
    ans.answers = vec![
        a("10.0.0.1"),
        rec(RData::CNAME(CNAME(target.clone()))),
        a("10.0.0.3"),
    ];
    let before = ans.answers.clone();
    w.lb.balance(RecordType::MX, &mut ans, &mut rng);
    assert_eq!(ans.answers, before);
    // A section without addresses keeps its order (SRV answer).
    let srv = |p| rec(RData::SRV(SRV::new(p, 1, 80, target.clone())));
    ans.answers = vec![srv(2), srv(1)];
    let before = ans.answers.clone();
    w.lb.balance(RecordType::SRV, &mut ans, &mut rng);
    assert_eq!(ans.answers, before);
}

#[test]
fn weighted_weights_aaaa_and_the_additional_section_of_srv_answers() {
    let w = weighted(
        Some("# v6\nv6.example\n2001:db8::1 1\n2001:db8::2 255\n"),
        "reload 0",
    )
    .unwrap();
    let aaaa = |ip: &str| rec_at("v6.example.", RData::AAAA(AAAA(ip.parse().unwrap())));
    let mut rng = fastrand::Rng::with_seed(9);
    let (mut second_first, runs) = (0, 2000);
    for _ in 0..runs {
        let mut ans = Answer::rcode(ResponseCode::NoError);
        ans.additionals = vec![aaaa("2001:db8::1"), aaaa("2001:db8::2")];
        w.lb.balance(RecordType::SRV, &mut ans, &mut rng);
        if data(&ans.additionals)[0] == "2001:db8::2" {
            second_first += 1;
        }
    }
    // 255 of 256: far more than the uniform 1000.
    assert!(second_first > 1900, "{second_first} of {runs}");
}

#[test]
fn weighted_memo_pass_blocks_only_answers_it_chooses_in() {
    let w = weighted(Some(""), "reload 0").unwrap();
    let mut two = Answer::rcode(ResponseCode::NoError);
    two.answers = vec![a("10.0.0.1"), a("10.0.0.2")];
    let mut one = Answer::rcode(ResponseCode::NoError);
    one.answers = vec![a("10.0.0.1")];
    one.authority = vec![a("10.0.0.2"), a("10.0.0.3")];
    let mut glue = Answer::rcode(ResponseCode::NoError);
    glue.additionals = vec![a("10.0.0.1"), a("10.0.0.2")];
    let cases = [
        (RecordType::A, &two, MemoPass::Block),
        (RecordType::SRV, &glue, MemoPass::Block),
        (RecordType::A, &one, MemoPass::Quiet),
        (RecordType::MX, &two, MemoPass::Quiet),
        (RecordType::TXT, &glue, MemoPass::Quiet),
    ];
    for (qtype, answer, want) in cases {
        assert_eq!(
            w.lb.memo_pass(&query("x.example.", qtype), answer),
            want,
            "{qtype}"
        );
    }
    let limited = weighted(Some(""), "reload 0\n limit_answers 5").unwrap();
    assert_eq!(
        limited
            .lb
            .memo_pass(&query("x.example.", RecordType::A), &one),
        MemoPass::Block
    );
}

/// The error building [`weighted`] fails with.
fn build_error(file: Option<&str>, block: &str) -> String {
    match weighted(file, block) {
        Ok(_) => panic!("built with {file:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_broken_or_missing_file_fails_the_build_with_its_line() {
    let err = build_error(Some("a.example\n10.0.0.1 3\n10.0.0.2 0\n"), "reload 10s");
    assert!(
        err.starts_with("loadbalance: weight file ")
            && err.ends_with("w.txt:3: invalid weight '0' (use 1..255)"),
        "{err}"
    );
    let err = build_error(None, "reload 0");
    assert!(
        err.starts_with("loadbalance: cannot read weight file "),
        "{err}"
    );
    // With reload on, a missing file is waited for: every address weighs 1.
    let w = weighted(None, "reload 10s").unwrap();
    assert_eq!(weight_of(&w.lb, "a.example.", "10.0.0.1"), 1);
    w.ctx.token.cancel();
}

#[test]
fn refresh_publishes_changes_and_keeps_the_last_good_weights() {
    let w = weighted(Some("a.example\n10.0.0.1 3\n"), "reload 0").unwrap();
    let s = source(&w.lb);
    assert_eq!(weight_of(&w.lb, "a.example.", "10.0.0.1"), 3);
    // (new content or None for the same file, what refresh did, the weight after)
    for (i, (content, want, weight)) in [
        (None, Refresh::Unchanged, 3),
        (Some("a.example\n10.0.0.1 9\n"), Refresh::Loaded, 9),
        (Some("a.example\n10.0.0.1 nine\n"), Refresh::Failed, 9),
        (None, Refresh::Unchanged, 9),
        (Some("a.example\n10.0.0.1 4\n"), Refresh::Loaded, 4),
        (Some("b.example\n10.0.0.1 5\n"), Refresh::Loaded, 1),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(text) = content {
            std::fs::write(&w.path, text).unwrap();
        }
        assert_eq!(s.refresh(), want, "step {i}");
        assert_eq!(
            weight_of(&w.lb, "a.example.", "10.0.0.1"),
            weight,
            "step {i}"
        );
    }
    // Unreadable (deleted, not UTF-8): the weights stay.
    std::fs::remove_file(&w.path).unwrap();
    assert_eq!(s.refresh(), Refresh::Failed);
    std::fs::write(&w.path, b"b.example\n10.0.0.1 \xff\n").unwrap();
    assert_eq!(s.refresh(), Refresh::Failed);
    assert_eq!(weight_of(&w.lb, "b.example.", "10.0.0.1"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_task_picks_up_a_changed_file_and_ends_with_the_token() {
    let w = weighted(Some("a.example\n10.0.0.1 3\n"), "reload 10ms").unwrap();
    std::fs::write(&w.path, "a.example\n10.0.0.1 7\n").unwrap();
    let mut polls = 0;
    while weight_of(&w.lb, "a.example.", "10.0.0.1") != 7 {
        polls += 1;
        assert!(polls < 1000, "the new weight was not loaded within ~10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The task holds the only other reference to the source; it lets go
    // once the build's token is cancelled (a reload or shutdown).
    let s = Arc::clone(source(&w.lb));
    assert!(Arc::strong_count(&s) >= 3, "plugin, task and this test");
    w.ctx.token.cancel();
    let mut polls = 0;
    while Arc::strong_count(&s) > 2 {
        polls += 1;
        assert!(polls < 1000, "the reload task did not end within ~10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
