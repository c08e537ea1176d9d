//! Tests of the scripts [`super::Ruleset`] writes, against a small
//! interpreter of exactly those commands that enforces what the kernel
//! enforces (a deleted chain must be empty and unreferenced, an element
//! deleted must exist, an element added must not exist with another
//! value). Real nft runs the same scripts in `tests/proxy_nft.rs`.

use std::collections::BTreeMap;

use super::*;

/// The interpreter's state is a [`Ruleset`] (dynamic sets and maps both in
/// `maps`/`dynamic_sets` as declared).
pub(crate) fn run(mut state: Ruleset, script: &str) -> Result<Ruleset, String> {
    for line in script.lines() {
        let words: Vec<&str> = line.splitn(5, ' ').collect();
        let (verb, kind) = (words[0], words[1]);
        if kind == "table" {
            continue;
        }
        assert_eq!(&words[2..4], ["inet", state.table.as_str()], "{line}");
        let rest = words.get(4).copied().unwrap_or_default();
        let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let name = name.to_owned();
        match (verb, kind) {
            ("add", "chain") => {
                let base = tail
                    .strip_prefix("{ ")
                    .and_then(|t| t.strip_suffix(" }"))
                    .map(str::to_owned);
                let shared = name.starts_with("lb");
                state.chains.entry(name).or_insert(Chain {
                    base,
                    rules: vec![],
                    shared,
                });
            }
            ("flush", "chain") => state
                .chains
                .get_mut(&name)
                .ok_or(format!("no chain: {line}"))?
                .rules
                .clear(),
            ("add", "rule") => state
                .chains
                .get_mut(&name)
                .ok_or(format!("no chain: {line}"))?
                .rules
                .push(tail.to_owned()),
            ("delete", "chain") => {
                let c = state.chains.get(&name).ok_or(format!("no chain: {line}"))?;
                if !c.rules.is_empty() {
                    return Err(format!("chain not empty: {line}"));
                }
                let referenced = state
                    .chains
                    .values()
                    .flat_map(|c| &c.rules)
                    .chain(
                        state
                            .maps
                            .values()
                            .flat_map(|m| m.elements.values().flatten()),
                    )
                    .any(|r| {
                        r.split_whitespace()
                            .any(|w| w.trim_end_matches([',', '}']) == name)
                    });
                if referenced {
                    return Err(format!("chain still referenced: {line}"));
                }
                state.chains.remove(&name);
            }
            ("add", "map" | "set") => {
                let decl = tail
                    .trim_start_matches("{ ")
                    .trim_end_matches(" }")
                    .to_owned();
                if decl.contains("dynamic") {
                    state.dynamic_sets.entry(name).or_insert(decl);
                } else {
                    state.maps.entry(name).or_insert(Map {
                        is_set: kind == "set",
                        decl,
                        elements: BTreeMap::new(),
                    });
                }
            }
            ("flush", "map" | "set") => state
                .maps
                .get_mut(&name)
                .ok_or(format!("no map: {line}"))?
                .elements
                .clear(),
            ("delete", "map" | "set") => {
                let used = state
                    .chains
                    .values()
                    .flat_map(|c| &c.rules)
                    .any(|r| r.contains(&format!("@{name}")));
                if used {
                    return Err(format!("set still referenced: {line}"));
                }
                if state.maps.remove(&name).is_none() && state.dynamic_sets.remove(&name).is_none()
                {
                    return Err(format!("no set: {line}"));
                }
            }
            ("add" | "delete", "element") => {
                let body = tail.trim_start_matches("{ ").trim_end_matches(" }");
                let m = state.maps.get_mut(&name).ok_or(format!("no map: {line}"))?;
                for item in body.split(", ") {
                    let (k, v) = match item.split_once(" : ") {
                        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                        None => (item.to_owned(), None),
                    };
                    if verb == "add" {
                        if let Some(old) = m.elements.get(&k)
                            && *old != v
                        {
                            return Err(format!("element exists with another value: {line}"));
                        }
                        m.elements.insert(k, v);
                    } else if m.elements.remove(&k).is_none() {
                        return Err(format!("no element {k}: {line}"));
                    }
                }
            }
            _ => return Err(format!("unknown command: {line}")),
        }
    }
    Ok(state)
}

pub(crate) fn empty(table: &str) -> Ruleset {
    Ruleset {
        table: table.to_owned(),
        ..Ruleset::default()
    }
}

fn rs(chains: &[(&str, &[&str])], elements: &[(&str, &str)], dynamic: &[&str]) -> Ruleset {
    let mut r = empty("t");
    for (name, rules) in chains {
        r.chains.insert(
            (*name).to_owned(),
            Chain {
                base: None,
                rules: rules.iter().map(|s| (*s).to_owned()).collect(),
                shared: name.starts_with("lb"),
            },
        );
    }
    let mut m = Map {
        is_set: false,
        decl: "type ipv4_addr . inet_proto . inet_service : verdict ;".into(),
        elements: BTreeMap::new(),
    };
    for (k, v) in elements {
        m.elements.insert((*k).to_owned(), Some((*v).to_owned()));
    }
    r.maps.insert("service-ips".into(), m);
    for d in dynamic {
        r.dynamic_sets.insert(
            (*d).to_owned(),
            "type ipv4_addr ; flags dynamic,timeout ; timeout 60s ;".into(),
        );
    }
    r
}

fn states() -> Vec<Ruleset> {
    vec![
        empty("t"),
        rs(
            &[
                ("svc-a", &["numgen random mod 1 vmap { 0 : goto ep-1 }"]),
                ("ep-1", &["dnat ip to 10.0.0.1:80"]),
            ],
            &[("10.96.0.1 . tcp . 80", "goto svc-a")],
            &[],
        ),
        rs(
            &[
                (
                    "svc-a",
                    &["numgen random mod 2 vmap { 0 : goto ep-1, 1 : goto ep-2 }"],
                ),
                ("ep-1", &["dnat ip to 10.0.0.1:80"]),
                ("ep-2", &["dnat ip to 10.0.0.2:80"]),
            ],
            &[("10.96.0.1 . tcp . 80", "goto svc-a")],
            &[],
        ),
        rs(
            &[
                (
                    "svc-b",
                    &[
                        "ip saddr @aff-2 goto ep-2",
                        "numgen random mod 1 vmap { 0 : goto ep-2 }",
                    ],
                ),
                (
                    "ep-2",
                    &["update @aff-2 { ip saddr }", "dnat ip to 10.0.0.2:80"],
                ),
            ],
            &[
                ("10.96.0.1 . tcp . 80", "goto svc-b"),
                ("10.96.0.2 . tcp . 80", "goto svc-b"),
            ],
            &["aff-2"],
        ),
        rs(&[], &[("10.96.0.1 . tcp . 80", "goto reject-chain")], &[]),
    ]
}

#[test]
fn every_diff_turns_one_state_into_the_other() {
    for (i, a) in states().iter().enumerate() {
        for (j, b) in states().iter().enumerate() {
            let start = run(empty("t"), &a.full_script(&Existing::default()))
                .unwrap_or_else(|e| panic!("full {i}: {e}"));
            assert_eq!(&start, a, "full script of state {i}");
            let script = a.diff_script(b);
            let end = run(start, &script).unwrap_or_else(|e| panic!("{i}→{j}: {e}\n{script}"));
            assert_eq!(&end, b, "{i}→{j}:\n{script}");
            if i == j {
                assert_eq!(script, "", "no change, no commands");
            }
        }
    }
}

#[test]
fn a_full_sync_removes_what_the_kernel_holds_and_we_do_not_want() {
    for (i, a) in states().iter().enumerate() {
        for (j, b) in states().iter().enumerate() {
            let kernel = run(empty("t"), &a.full_script(&Existing::default())).expect("a");
            let existing = Existing {
                chains: kernel.chains.keys().cloned().collect(),
                sets: kernel.dynamic_sets.keys().cloned().collect(),
                maps: kernel.maps.keys().cloned().collect(),
            };
            let repaired = run(kernel, &b.full_script(&existing))
                .unwrap_or_else(|e| panic!("full {i}→{j}: {e}"));
            assert_eq!(&repaired, b, "full {i}→{j}");
        }
    }
}

#[test]
fn one_endpoint_more_touches_one_chain_and_adds_one() {
    let s = states();
    let script = s[1].diff_script(&s[2]);
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(
        lines,
        [
            "add chain inet t ep-2",
            "flush chain inet t svc-a",
            "add rule inet t ep-2 dnat ip to 10.0.0.2:80",
            "add rule inet t svc-a numgen random mod 2 vmap { 0 : goto ep-1, 1 : goto ep-2 }",
        ]
    );
}

#[test]
fn size_counts_chains_rules_and_elements() {
    let s = &states()[3];
    assert_eq!(
        s.size(),
        Size {
            chains: 2,
            rules: 4,
            elements: 2
        }
    );
}

#[test]
fn elements_go_in_batches_of_a_thousand_per_command() {
    let mut big = states()[1].clone();
    let m = big.maps.get_mut("service-ips").expect("map");
    for i in 0..2500 {
        m.elements.insert(
            format!("10.97.{}.{} . tcp . 80", i / 256, i % 256),
            Some("goto svc-a".into()),
        );
    }
    let full = big.full_script(&Existing::default());
    let adds: Vec<&str> = full
        .lines()
        .filter(|l| l.starts_with("add element"))
        .collect();
    assert_eq!(adds.len(), 3, "2501 elements: 1000 + 1000 + 501");
    assert_eq!(adds[2].matches(", ").count(), 500);
    let kernel = run(empty("t"), &full).expect("full");
    assert_eq!(kernel, big);
    // And back: 2500 deletes in 3 commands.
    let back = big.diff_script(&states()[1]);
    let deletes = back
        .lines()
        .filter(|l| l.starts_with("delete element"))
        .count();
    assert_eq!(deletes, 3);
    assert_eq!(run(kernel, &back).expect("diff"), states()[1]);
}

/// Between one Service's fragments, maps are never declared or deleted
/// (the table owns them): a fragment without a map has no elements in it.
#[test]
fn fragment_diffs_leave_maps_to_the_table() {
    let with = rs(&[], &[("10.96.0.1 . tcp . 80", "goto lb-1")], &[]);
    let mut without = with.clone();
    without.maps.clear();
    let gone = with.fragment_diff_script(&without);
    assert_eq!(
        gone.lines().collect::<Vec<_>>(),
        ["delete element inet t service-ips { 10.96.0.1 . tcp . 80 }"]
    );
    let back = without.fragment_diff_script(&with);
    assert_eq!(
        back.lines().collect::<Vec<_>>(),
        ["add element inet t service-ips { 10.96.0.1 . tcp . 80 : goto lb-1 }"]
    );
    // The whole-table diff does declare and delete the map.
    assert!(
        with.diff_script(&without)
            .contains("delete map inet t service-ips")
    );
}
