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

impl Fragment {
    /// Chains (not shared), rules and elements of this fragment alone.
    fn own_size(&self) -> Size {
        let rs = &self.rendered.ruleset;
        let own = rs.chains.values().filter(|c| !c.shared);
        Size {
            chains: own.clone().count(),
            rules: own.map(|c| c.rules.len()).sum(),
            elements: rs.maps.values().map(|m| m.elements.len()).sum(),
        }
    }

    fn shared(&self) -> impl Iterator<Item = (&String, &Chain)> {
        self.rendered
            .ruleset
            .chains
            .iter()
            .filter(|(_, c)| c.shared)
    }
}

/// A Service's fragment before and after a change (`None`: none).
type Pair = (Option<Arc<Fragment>>, Option<Arc<Fragment>>);

/// One Service's inputs now, for [`Table::update`]: `None` when the
/// Service is gone.
pub type Change = (String, Option<(Arc<Service>, Vec<Arc<Slice>>)>);

/// What [`Table::update`] did.
#[derive(Debug, Default)]
pub struct Update {
    /// The `nft` script that makes the kernel follow (empty: nothing to do).
    pub script: String,
    /// UDP flows of the changed Services before and after (for conntrack
    /// cleanup).
    pub udp_before: UdpFlows,
    /// See `udp_before`.
    pub udp_after: UdpFlows,
}

/// The whole table, by Service; see the module doc.
#[derive(Clone, Debug)]
pub struct Table {
    opts: Options,
    base: Ruleset,
    /// An empty fragment (the side of a diff where a Service is absent).
    template: Ruleset,
    fragments: HashMap<String, Arc<Fragment>>,
    /// The shared chains the fragments name, with how many name each.
    shared: BTreeMap<String, (Chain, usize)>,
    /// The fragments' own sizes, summed.
    own: Size,
}

fn add(a: Size, b: Size) -> Size {
    Size {
        chains: a.chains + b.chains,
        rules: a.rules + b.rules,
        elements: a.elements + b.elements,
    }
}

fn sub(a: Size, b: Size) -> Size {
    Size {
        chains: a.chains.saturating_sub(b.chains),
        rules: a.rules.saturating_sub(b.rules),
        elements: a.elements.saturating_sub(b.elements),
    }
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
        let template = Ruleset {
            table: base.table.clone(),
            ..Ruleset::default()
        };
        let none = Vec::new();
        let mut table = Table {
            opts: opts.clone(),
            base,
            template,
            fragments: HashMap::with_capacity(services.len()),
            shared: BTreeMap::new(),
            own: Size::default(),
        };
        for svc in services {
            let key = svc.key();
            let svc_slices = slices.get(&key).unwrap_or(&none);
            let same = reusable
                .and_then(|p| p.fragments.get(&key))
                .filter(|f| f.inputs.matches(svc, svc_slices, node))
                .cloned();
            let fragment =
                same.unwrap_or_else(|| table.render(Arc::clone(svc), svc_slices.clone(), node));
            table.count(&fragment, true);
            table.fragments.insert(key, fragment);
        }
        table
    }

    fn render(&self, service: Arc<Service>, slices: Vec<Arc<Slice>>, node: &Node) -> Arc<Fragment> {
        let rendered = render::render_service(&service, &slices, node, &self.opts, &self.base);
        Arc::new(Fragment {
            inputs: Inputs {
                service,
                slices,
                node: node.clone(),
            },
            rendered,
        })
    }

    /// Count a fragment in (or out of) the sizes and shared chains.
    fn count(&mut self, f: &Fragment, adding: bool) {
        if adding {
            self.own = add(self.own, f.own_size());
        } else {
            self.own = sub(self.own, f.own_size());
        }
        for (name, chain) in f.shared() {
            if adding {
                self.shared
                    .entry(name.clone())
                    .or_insert_with(|| (chain.clone(), 0))
                    .1 += 1;
            } else if let Some(entry) = self.shared.get_mut(name) {
                entry.1 = entry.1.saturating_sub(1);
                if entry.1 == 0 {
                    self.shared.remove(name);
                }
            }
        }
    }

    /// The shared chains, by name.
    fn shared_chains(&self) -> BTreeMap<String, Chain> {
        self.shared
            .iter()
            .map(|(k, (c, _))| (k.clone(), c.clone()))
            .collect()
    }

    /// A ruleset holding only `chains` (to diff the shared chains alone).
    fn only(&self, chains: BTreeMap<String, Chain>) -> Ruleset {
        Ruleset {
            table: self.base.table.clone(),
            chains,
            ..Ruleset::default()
        }
    }

    /// The script for fragments going from `old` to `new` (`None`: no
    /// fragment) while the shared chains go from `before` to `after`: the
    /// shared chains' union first (new ones created, changed ones
    /// refilled), the fragments, then only what is still used.
    fn script<'a>(
        &self,
        before: BTreeMap<String, Chain>,
        after: BTreeMap<String, Chain>,
        pairs: impl Iterator<Item = (Option<&'a Rendered>, Option<&'a Rendered>)>,
    ) -> String {
        let mut union = before.clone();
        union.extend(after.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (before, union, after) = (self.only(before), self.only(union), self.only(after));
        let mut script = before.diff_script(&union);
        for (old, new) in pairs {
            let old = old.map_or(&self.template, |r| &r.ruleset);
            let new = new.map_or(&self.template, |r| &r.ruleset);
            script.push_str(&old.fragment_diff_script(new));
        }
        script.push_str(&union.diff_script(&after));
        script
    }

    /// Re-render the Services in `changes` in place (the sync loop's path
    /// for a few changed Services: no work for the others) and return the
    /// script that makes the kernel follow.
    pub fn update(&mut self, changes: Vec<Change>, node: &Node) -> Update {
        let before = self.shared_chains();
        let mut pairs: Vec<Pair> = Vec::new();
        for (key, now) in changes {
            let old = self.fragments.get(&key).cloned();
            let new = match now {
                Some((svc, slices)) => {
                    if old
                        .as_ref()
                        .is_some_and(|f| f.inputs.matches(&svc, &slices, node))
                    {
                        continue;
                    }
                    Some(self.render(svc, slices, node))
                }
                None if old.is_none() => continue,
                None => None,
            };
            if let Some(o) = &old {
                self.count(o, false);
                self.fragments.remove(&key);
            }
            if let Some(n) = &new {
                self.count(n, true);
                self.fragments.insert(key, Arc::clone(n));
            }
            pairs.push((old, new));
        }
        let after = self.shared_chains();
        let script = self.script(
            before,
            after,
            pairs.iter().map(|(o, n)| {
                (
                    o.as_deref().map(|f| &f.rendered),
                    n.as_deref().map(|f| &f.rendered),
                )
            }),
        );
        let (mut udp_before, mut udp_after) = (UdpFlows::new(), UdpFlows::new());
        for (old, new) in &pairs {
            for (flows, f) in [(&mut udp_before, old), (&mut udp_after, new)] {
                for (entry, ips) in f.iter().flat_map(|f| &f.rendered.udp) {
                    flows.entry(*entry).or_default().extend(ips.iter().copied());
                }
            }
        }
        Update {
            script,
            udp_before,
            udp_after,
        }
    }

    /// Every Service in the table with its slices.
    pub fn services(&self) -> impl Iterator<Item = (&Service, &[Arc<Slice>])> {
        self.fragments
            .values()
            .map(|f| (f.inputs.service.as_ref(), f.inputs.slices.as_slice()))
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
        let shared = Size {
            chains: self.shared.len(),
            rules: self.shared.values().map(|(c, _)| c.rules.len()).sum(),
            elements: 0,
        };
        add(add(self.base.size(), self.own), shared)
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
        Some(self.script(
            self.shared_chains(),
            next.shared_chains(),
            self.changed(next).into_iter(),
        ))
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

    /// `update` in place, given only the changed Services, ends where
    /// `next` from all inputs does, and its script takes the kernel there.
    #[test]
    fn updating_in_place_equals_rendering_everything() {
        let opts = Options::default();
        let (svc_a, sl_a) = state(&[2, 3, 1]);
        let mut t = Table::next(None, &shared(&svc_a), &sl_a, &node(), &opts);
        let kernel = run(
            empty("clusterdns"),
            &t.assemble().ruleset.full_script(&Existing::default()),
        )
        .expect("full script");
        // s1 loses an endpoint, s2 goes, s3 arrives, s0 is named but unchanged.
        let (mut svc_b, mut sl_b) = state(&[2, 2, 1, 4]);
        svc_b.remove(2);
        sl_b.remove("default/s2");
        let now = |name: &str| -> Change {
            let key = format!("default/{name}");
            let svc = svc_b.iter().find(|s| s.name == name).cloned().map(Arc::new);
            (
                key.clone(),
                svc.map(|s| (s, sl_b.get(&key).cloned().unwrap_or_default())),
            )
        };
        let up = t.update(vec![now("s0"), now("s1"), now("s2"), now("s3")], &node());
        let b = Table::next(None, &shared(&svc_b), &sl_b, &node(), &opts);
        assert_eq!(t.assemble(), b.assemble());
        assert_eq!(t.size(), b.assemble().ruleset.size());
        assert!(
            !up.script.contains("10.96.0.1 "),
            "s0 untouched:\n{}",
            up.script
        );
        let kernel = run(kernel, &up.script).unwrap_or_else(|e| panic!("{e}\n{}", up.script));
        assert_eq!(kernel, b.assemble().ruleset);
        assert!(
            !kernel.chains.contains_key("lb4-tcp-3-8080"),
            "s1's old chain went"
        );
        assert_eq!(up.udp_after.len(), 2, "s1 and s3: {:?}", up.udp_after);
        // Nothing changed: nothing to write.
        let again = t.update(vec![now("s1")], &node());
        assert_eq!(again.script, "");
        // The table's Services, for the health checks.
        let mut names: Vec<&str> = t.services().map(|(s, _)| s.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["s0", "s1", "s3"]);
    }
}
