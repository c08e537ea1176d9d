//! The buffers against a registry's scrape.

use super::*;
use prometheus::{HistogramOpts, Opts, Registry};

fn families() -> Families {
    let c = |n: &str, l: &[&str]| IntCounterVec::new(Opts::new(n, n), l).expect("counter");
    let h =
        |n: &str, l: &[&str]| HistogramVec::new(HistogramOpts::new(n, n), l).expect("histogram");
    Families {
        requests: c(
            "req",
            &["server", "zone", "view", "proto", "family", "type"],
        ),
        do_requests: c("dor", &["server", "zone", "view"]),
        responses: c("resp", &["server", "zone", "view", "rcode", "plugin"]),
        duration: h("dur", &["server", "zone", "view"]),
        request_size: h("reqs", &["server", "zone", "view", "proto"]),
        response_size: h("resps", &["server", "zone", "view", "proto"]),
    }
}

/// Series of family `name` in a scrape: `label=value`s (by label name) →
/// counter value or histogram sample count.
fn series(r: &Registry, name: &str) -> Vec<(Vec<String>, u64)> {
    let Some(fam) = r.gather().into_iter().find(|f| f.name() == name) else {
        return Vec::new();
    };
    let counter = fam.get_field_type() == prometheus::proto::MetricType::COUNTER;
    let mut out: Vec<(Vec<String>, u64)> = fam
        .get_metric()
        .iter()
        .map(|m| {
            let labels = m
                .get_label()
                .iter()
                .map(|l| format!("{}={}", l.name(), l.value()))
                .collect();
            let n = if counter {
                m.get_counter().get_value() as u64
            } else {
                m.get_histogram().get_sample_count()
            };
            (labels, n)
        })
        .collect();
    out.sort();
    out
}

fn labels<'a>(server: &'a Arc<str>, zone: &'a Arc<str>, rcode: &'static str) -> Labels<'a> {
    Labels {
        server,
        zone,
        view: crate::dns::metrics::no_view(),
        proto: "udp",
        family: "1",
        qtype: "A",
        rcode,
        plugin: "kubernetes",
        dnssec_ok: false,
    }
}

/// Counts made on several threads all show in the next scrape, and are not
/// counted twice by the one after.
#[test]
fn a_scrape_sums_every_threads_buffers_once() {
    let sharded = Sharded::new(families());
    let r = Registry::new();
    r.register(Box::new(Collect(Arc::clone(&sharded))))
        .expect("register");
    let (server, zone): (Arc<str>, Arc<str>) = ("dns://:53".into(), "cluster.local.".into());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (sharded, server, zone) = (&sharded, &server, &zone);
            s.spawn(move || {
                for _ in 0..250 {
                    sharded.record(&labels(server, zone, "NOERROR"), |b| {
                        b.duration.observe(0.001)
                    });
                }
            });
        }
    });
    sharded.record(&labels(&server, &zone, "NXDOMAIN"), |_| {});
    let l = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let common = ["server=dns://:53", "view=", "zone=cluster.local."];
    let want_req = vec![(
        l(&[
            "family=1",
            "proto=udp",
            common[0],
            "type=A",
            common[1],
            common[2],
        ]),
        1001,
    )];
    assert_eq!(series(&r, "req"), want_req);
    let resp = |rcode: &str| {
        let rcode = format!("rcode={rcode}");
        l(&["plugin=kubernetes", &rcode, common[0], common[1], common[2]])
    };
    assert_eq!(
        series(&r, "resp"),
        vec![(resp("NOERROR"), 1000), (resp("NXDOMAIN"), 1)]
    );
    assert_eq!(series(&r, "dur")[0].1, 1000, "histograms flushed too");
    assert_eq!(series(&r, "req"), want_req, "a second scrape adds nothing");
    assert!(series(&r, "dor").is_empty(), "no DO bit, no series");
}

/// The same label text at another address (a reload builds new strings)
/// counts into the same series; another text into its own.
#[test]
fn series_follow_the_label_text_not_its_address() {
    let sharded = Sharded::new(families());
    let r = Registry::new();
    r.register(Box::new(Collect(Arc::clone(&sharded))))
        .expect("register");
    let zone: Arc<str> = "cluster.local.".into();
    let (a, b, other): (Arc<str>, Arc<str>, Arc<str>) =
        ("dns://:53".into(), "dns://:53".into(), "dns://:5353".into());
    for server in [&a, &b, &other] {
        let mut l = labels(server, &zone, "NOERROR");
        l.dnssec_ok = true;
        sharded.record(&l, |_| {});
    }
    let got: Vec<(String, u64)> = series(&r, "dor")
        .into_iter()
        .map(|(l, n)| (l[0].clone(), n))
        .collect();
    assert_eq!(
        got,
        [
            ("server=dns://:53".to_owned(), 2),
            ("server=dns://:5353".to_owned(), 1)
        ]
    );
}
