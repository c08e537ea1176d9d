//! `namespace_labels`: in a [`ClusterIndex::namespace_filtered`] index only
//! namespaces whose (selected) Namespace object is known exist; a Service in
//! any other namespace answers nothing, forward or reverse.

use super::*;

fn labelled_cluster() -> ClusterIndex {
    let http = || vec![port("http", 80)];
    let mut idx = ClusterIndex::namespace_filtered();
    idx.apply(IndexUpdate::Batch(vec![
        namespace("tests"),
        svc("tests", "web", cluster_ip(&["10.0.0.1"]), http()),
        svc("default", "other", cluster_ip(&["10.0.0.2"]), http()),
        svc("default", "headless", ServiceKind::Headless, http()),
        slice(
            "default",
            "headless-a",
            "headless",
            http(),
            vec![ep("172.0.0.9", None)],
        ),
    ]));
    idx.set_serial(SERIAL);
    idx
}

fn all_namespaces() -> LookupOptions {
    let mut o = opts();
    o.namespaces = None;
    o
}

const SELECTED: &[Case] = &[
    ok(
        "web.tests.svc.cluster.local.",
        A,
        &["web.tests.svc.cluster.local. 5 IN A 10.0.0.1"],
    ),
    nodata("tests.svc.cluster.local.", A),
];

const SELECTED_REVERSE: &[Case] = &[ok(
    "1.0.0.10.in-addr.arpa.",
    PTR,
    &["1.0.0.10.in-addr.arpa. 5 IN PTR web.tests.svc.cluster.local."],
)];

const UNSELECTED: &[Case] = &[
    nx("other.default.svc.cluster.local.", A),
    nx("headless.default.svc.cluster.local.", A),
    nx("default.svc.cluster.local.", A),
    nx("_http._tcp.other.default.svc.cluster.local.", SRV),
];

#[test]
fn only_namespaces_whose_object_is_selected_are_exposed() {
    let idx = labelled_cluster();
    let o = all_namespaces();
    run(&idx, &o, SELECTED);
    run_in(&idx, &o, "in-addr.arpa.", SELECTED_REVERSE);
    run(&idx, &o, UNSELECTED);
    // Reverse names of unselected services are not answered either.
    for q in ["2.0.0.10.in-addr.arpa.", "9.0.0.172.in-addr.arpa."] {
        let got = ask(&idx, &o, "in-addr.arpa.", q, PTR);
        assert_eq!(got.rcode, NXDomain, "{q}");
    }
}

#[test]
fn a_namespace_gaining_and_losing_its_label_appears_and_disappears() {
    let mut idx = labelled_cluster();
    let o = all_namespaces();
    // Gains the label: the watch (or the manifests) now sends its object.
    idx.apply(namespace("default"));
    run(
        &idx,
        &o,
        &[
            ok(
                "other.default.svc.cluster.local.",
                A,
                &["other.default.svc.cluster.local. 5 IN A 10.0.0.2"],
            ),
            nodata("default.svc.cluster.local.", A),
        ],
    );
    // Loses it: the selected watch sends a deletion.
    idx.apply(IndexUpdate::Delete {
        kind: Kind::Namespace,
        namespace: "".into(),
        name: "default".into(),
    });
    run(&idx, &o, UNSELECTED);
    run(&idx, &o, SELECTED);
    run_in(&idx, &o, "in-addr.arpa.", SELECTED_REVERSE);
    // A namespace relist without `tests` hides it too, services and all.
    idx.apply(IndexUpdate::Reset {
        kind: Kind::Namespace,
        objects: vec![Object::Namespace(Namespace {
            name: "default".into(),
        })],
    });
    run(&idx, &o, &[nx("web.tests.svc.cluster.local.", A)]);
    let got = ask(&idx, &o, "in-addr.arpa.", "1.0.0.10.in-addr.arpa.", PTR);
    assert_eq!(got.rcode, NXDomain);
}

#[test]
fn without_the_option_a_service_makes_its_namespace_exist() {
    let mut idx = ClusterIndex::default();
    idx.apply(svc(
        "default",
        "other",
        cluster_ip(&["10.0.0.2"]),
        vec![port("http", 80)],
    ));
    idx.set_serial(SERIAL);
    run(
        &idx,
        &all_namespaces(),
        &[ok(
            "other.default.svc.cluster.local.",
            A,
            &["other.default.svc.cluster.local. 5 IN A 10.0.0.2"],
        )],
    );
}
