//! The proxy's memory of what it wrote, per Service, so a sync re-renders
//! and diffs only the Services whose inputs changed. A [`Table`] is the base
//! (hooks, dispatch chains, map declarations) plus one fragment per Service
//! ([`render::render_service`]) with the inputs it was rendered from. The
//! next table reuses every fragment whose Service, slices and node are
//! unchanged (shared, not copied); the incremental script is the
//! concatenation of the changed fragments' diffs, which never touch each
//! other's chains or elements, framed by the shared balancing chains
//! (`lb4-N`, one per endpoint count, named by many fragments): those the
//! next table uses first are created before the fragments' diffs, those no
//! fragment uses any more are deleted after them. A full sync assembles
//! the whole ruleset.
//!
//! Pure: the shell decides full or incremental and runs nft.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::model::{Service, Slice, SlicesByService};
use super::render::{self, Options, Rendered, UdpFlows};
use super::ruleset::{Chain, Ruleset, Size};
use super::select::Node;

/// What one Service's fragment was rendered from (shared with the sync
/// loop's converted objects, so an unchanged input is the same pointer).
#[derive(Clone, Debug)]
struct Inputs {
    service: Arc<Service>,
    slices: Vec<Arc<Slice>>,
    node: Node,
}

/// The same value: the same pointer (the usual case), else equal contents.
fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

impl Inputs {
    fn matches(&self, service: &Arc<Service>, slices: &[Arc<Slice>], node: &Node) -> bool {
        same(&self.service, service)
            && self.slices.len() == slices.len()
            && self.slices.iter().zip(slices).all(|(a, b)| same(a, b))
            && self.node == *node
    }
}

#[derive(Debug)]
struct Fragment {
    inputs: Inputs,
    rendered: Rendered,
}

/// The whole table, by Service; see the module doc.
#[derive(Clone, Debug)]
pub struct Table {
    opts: Options,
    base: Ruleset,
    template: Ruleset,
    fragments: HashMap<String, Arc<Fragment>>,
    /// The shared chains the fragments name, once each.
    shared: BTreeMap<String, Chain>,
}

impl Table {
    /// The table for these inputs, reusing `prev`'s fragments where the
    /// inputs (and the options) are the same.
    pub fn next(
        prev: Option<&Table>,
        services: &[Arc<Service>],
        slices: &SlicesByService,
        node: &Node,
        opts: &Options,
    ) -> Table {
        let base = render::base_table(opts);
        let reusable = prev.filter(|p| p.opts == *opts && p.base == base);
        let template = render::fragment_template(&base);
        let none = Vec::new();
        let mut fragments = HashMap::with_capacity(services.len());
        for svc in services {
            let key = svc.key();
            let svc_slices = slices.get(&key).unwrap_or(&none);
            let same = reusable
                .and_then(|p| p.fragments.get(&key))
                .filter(|f| f.inputs.matches(svc, svc_slices, node))
                .cloned();
            let fragment = same.unwrap_or_else(|| {
                Arc::new(Fragment {
                    inputs: Inputs {
                        service: Arc::clone(svc),
                        slices: svc_slices.clone(),
                        node: node.clone(),
                    },
                    rendered: render::render_service(svc, svc_slices, node, opts, &template),
                })
            });
            fragments.insert(key, fragment);
        }
        let mut shared = BTreeMap::new();
        for f in fragments.values() {
            for (name, chain) in f.rendered.ruleset.chains.iter().filter(|(_, c)| c.shared) {
                if !shared.contains_key(name) {
                    shared.insert(name.clone(), chain.clone());
                }
            }
        }
        Table {
            opts: opts.clone(),
            base,
            template,
            fragments,
            shared,
        }
    }

    /// A ruleset holding only `chains` (to diff the shared chains alone).
    fn only(&self, chains: BTreeMap<String, Chain>) -> Ruleset {
        Ruleset {
            table: self.base.table.clone(),
            chains,
            ..Ruleset::default()
        }
    }

    /// The whole ruleset and UDP flows (for a full sync).
    pub fn assemble(&self) -> Rendered {
        let mut out = Rendered {
            ruleset: self.base.clone(),
            udp: UdpFlows::new(),
        };
        for f in self.fragments.values() {
            render::merge(&mut out, &f.rendered);
        }
        out
    }

    /// Chains, rules and elements of the whole table.
    pub fn size(&self) -> Size {
        let mut size = self.base.size();
        for f in self.fragments.values() {
            let rs = &f.rendered.ruleset;
            let own = rs.chains.values().filter(|c| !c.shared);
            size.chains += own.clone().count();
            size.rules += own.map(|c| c.rules.len()).sum::<usize>();
            size.elements += rs.maps.values().map(|m| m.elements.len()).sum::<usize>();
        }
        size.chains += self.shared.len();
        size.rules += self.shared.values().map(|c| c.rules.len()).sum::<usize>();
        size
    }

    fn changed<'a>(&'a self, next: &'a Table) -> Vec<(Option<&'a Rendered>, Option<&'a Rendered>)> {
        let mut out = Vec::new();
        for (key, new) in &next.fragments {
            match self.fragments.get(key) {
                Some(old) if Arc::ptr_eq(old, new) => {}
                old => out.push((old.map(|o| &o.rendered), Some(&new.rendered))),
            }
        }
        for (key, old) in &self.fragments {
            if !next.fragments.contains_key(key) {
                out.push((Some(&old.rendered), None));
            }
        }
        out
    }

    /// The script turning what `self` wrote into `next`, touching only the
    /// Services that changed; `None` when the base differs (a full sync is
    /// needed).
    pub fn diff_script(&self, next: &Table) -> Option<String> {
        if self.base != next.base {
            return None;
        }
        // Shared chains: the union first (new ones created, changed ones
        // refilled), the fragments, then only what the next table uses.
        let mut union = self.shared.clone();
        union.extend(next.shared.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (before, union, after) = (
            self.only(self.shared.clone()),
            self.only(union),
            self.only(next.shared.clone()),
        );
        let mut script = before.diff_script(&union);
        for (old, new) in self.changed(next) {
            let old = old.map_or(&self.template, |r| &r.ruleset);
            let new = new.map_or(&next.template, |r| &r.ruleset);
            script.push_str(&old.fragment_diff_script(new));
        }
        script.push_str(&union.diff_script(&after));
        Some(script)
    }

    /// The UDP flows before and after, of the Services that changed (what
    /// conntrack cleanup compares).
    pub fn udp_changes(&self, next: &Table) -> (UdpFlows, UdpFlows) {
        let (mut before, mut after) = (UdpFlows::new(), UdpFlows::new());
        for (old, new) in self.changed(next) {
            for (flows, r) in [(&mut before, old), (&mut after, new)] {
                for (entry, ips) in r.iter().flat_map(|r| &r.udp) {
                    flows.entry(*entry).or_default().extend(ips.iter().copied());
                }
            }
        }
        (before, after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::fixtures::{ep, slice, svc};
    use crate::proxy::model::{Protocol::Tcp, Protocol::Udp, group};
    use crate::proxy::ruleset::Existing;
    use crate::proxy::ruleset::tests::{empty, run};

    fn node() -> Node {
        Node {
            name: "node-a".into(),
            zone: None,
        }
    }

    fn shared(services: &[Service]) -> Vec<Arc<Service>> {
        services.iter().cloned().map(Arc::new).collect()
    }

    fn state(n_eps: &[usize]) -> (Vec<Service>, SlicesByService) {
        let mut services = Vec::new();
        let mut slices = Vec::new();
        for (i, &n) in n_eps.iter().enumerate() {
            let name = format!("s{i}");
            services.push(
                svc(&name, &format!("10.96.0.{}", i + 1))
                    .port("p", Tcp, 80)
                    .port("d", Udp, 53),
            );
            let eps: Vec<_> = (0..n)
                .map(|e| ep(&format!("10.244.{i}.{}", e + 2)))
                .collect();
            slices.push(slice(&name, &eps, &[("p", Tcp, 8080), ("d", Udp, 5353)]));
        }
        (services, group(slices))
    }

    #[test]
    fn incremental_scripts_touch_only_what_changed_and_add_up_to_a_full_render() {
        let opts = Options::default();
        let (svc_a, sl_a) = state(&[2, 3, 1]);
        let a = Table::next(None, &shared(&svc_a), &sl_a, &node(), &opts);
        assert_eq!(a.assemble(), render::render(&svc_a, &sl_a, &node(), &opts));

        // s1 loses an endpoint, s2 goes, s3 arrives; s0 is untouched.
        let (mut svc_b, mut sl_b) = state(&[2, 2, 1, 4]);
        svc_b.remove(2);
        sl_b.remove("default/s2");
        let b = Table::next(Some(&a), &shared(&svc_b), &sl_b, &node(), &opts);
        assert!(
            Arc::ptr_eq(&a.fragments["default/s0"], &b.fragments["default/s0"]),
            "reused"
        );
        assert_eq!(b.assemble(), render::render(&svc_b, &sl_b, &node(), &opts));
        let script = a.diff_script(&b).expect("same base");
        assert!(!script.contains("10.96.0.1 "), "s0 untouched:\n{script}");
        for vip in ["10.96.0.2 ", "10.96.0.3 ", "10.96.0.4 "] {
            assert!(script.contains(vip), "{vip} changes:\n{script}");
        }
        // The script turns what a full sync of `a` wrote into `b`: the
        // balancing chain for 4 endpoints appears, the one for 3 (s1's
        // before) goes, the one for 2 (still s0's) stays.
        let kernel = run(
            empty("clusterdns"),
            &a.assemble().ruleset.full_script(&Existing::default()),
        )
        .expect("full script of a");
        assert!(kernel.chains.contains_key("lb4-tcp-3-8080"));
        let kernel = run(kernel, &script).unwrap_or_else(|e| panic!("{e}\n{script}"));
        assert_eq!(kernel, b.assemble().ruleset);
        assert!(
            kernel.chains.contains_key("lb4-tcp-4-8080")
                && kernel.chains.contains_key("lb4-udp-2-5353")
        );
        assert!(!kernel.chains.contains_key("lb4-tcp-3-8080"));
        // Nothing changed: nothing to write.
        let c = Table::next(Some(&b), &shared(&svc_b), &sl_b, &node(), &opts);
        assert_eq!(b.diff_script(&c).as_deref(), Some(""));
        // UDP flows of the changed Services only.
        let (before, after) = a.udp_changes(&b);
        assert!(
            before
                .keys()
                .all(|e| !format!("{e:?}").contains("10.96.0.1,")),
            "{before:?}"
        );
        assert_eq!(after.len(), 2, "s1 and s3: {after:?}");
        // Other options: a full sync.
        let other = Options {
            masquerade_all: true,
            ..opts.clone()
        };
        let d = Table::next(Some(&c), &shared(&svc_b), &sl_b, &node(), &other);
        assert!(!Arc::ptr_eq(
            &c.fragments["default/s0"],
            &d.fragments["default/s0"]
        ));
        assert!(
            !d.assemble()
                .ruleset
                .full_script(&Existing::default())
                .is_empty()
        );
        assert_eq!(d.size(), d.assemble().ruleset.size());
    }
}
