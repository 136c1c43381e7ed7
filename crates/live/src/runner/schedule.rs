//! Which ready change apply starts first: the one that heads the longest chain of work still
//! to come. Starting in plan order instead lets quick, independent changes (CRDs waiting to be
//! Established, say) take the free places while the change that everything else waits for
//! (the namespace in front of three Helm releases in a row) waits for a place. Pure logic: the
//! runner gives the changes, what each waits for, and a rough cost per change.

use std::collections::{BTreeMap, BTreeSet};

use engine::{Address, ResourceKind};

/// A rough relative cost of one change, by kind: a Helm release (a helm process that waits
/// for its workloads) costs far more than one object.
pub fn cost(address: &Address) -> u64 {
    match address.kind {
        ResourceKind::HelmRelease => 10,
        _ => 1,
    }
}

/// For each change, the cost of the costliest chain that starts with it: its own cost plus
/// that of the costliest chain among the changes that wait for it. `waits` maps each change
/// to the changes it waits for (within the same map; others are ignored). A cycle (which the
/// graph never has) cannot loop: a change on it counts its own cost once.
pub fn priorities(
    waits: &BTreeMap<Address, BTreeSet<Address>>,
    cost: impl Fn(&Address) -> u64,
) -> BTreeMap<Address, u64> {
    let mut dependents: BTreeMap<&Address, Vec<&Address>> = BTreeMap::new();
    for (change, deps) in waits {
        for dep in deps {
            if waits.contains_key(dep) {
                dependents.entry(dep).or_default().push(change);
            }
        }
    }
    let mut out: BTreeMap<Address, u64> = BTreeMap::new();
    for change in waits.keys() {
        chain_cost(change, &dependents, &cost, &mut out, &mut BTreeSet::new());
    }
    out
}

fn chain_cost<'a>(
    change: &'a Address,
    dependents: &BTreeMap<&'a Address, Vec<&'a Address>>,
    cost: &impl Fn(&Address) -> u64,
    memo: &mut BTreeMap<Address, u64>,
    visiting: &mut BTreeSet<&'a Address>,
) -> u64 {
    if let Some(&known) = memo.get(change) {
        return known;
    }
    if !visiting.insert(change) {
        return 0;
    }
    let after = dependents
        .get(change)
        .into_iter()
        .flatten()
        .map(|d| chain_cost(d, dependents, cost, memo, visiting))
        .max()
        .unwrap_or(0);
    visiting.remove(change);
    let total = cost(change) + after;
    memo.insert(change.clone(), total);
    total
}

/// The index in `waiting` of the change to start next: among those whose every dependency is
/// `done`, the one of highest priority, the first in plan order among equals; `None` when none
/// is ready.
pub fn next_ready<T>(
    waiting: &[(T, BTreeSet<Address>)],
    address: impl Fn(&T) -> &Address,
    done: &BTreeSet<Address>,
    priority: &BTreeMap<Address, u64>,
) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (i, (item, deps)) in waiting.iter().enumerate() {
        if !deps.iter().all(|d| done.contains(d)) {
            continue;
        }
        let p = priority.get(address(item)).copied().unwrap_or(0);
        if best.is_none_or(|(_, b)| p > b) {
            best = Some((i, p));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Address {
        s.parse().unwrap()
    }

    /// The environment's shape: the cluster, CRDs that nothing soon waits for, and a
    /// namespace in front of three releases in a row.
    fn environment() -> BTreeMap<Address, BTreeSet<Address>> {
        let cluster = a("cluster.cluster.c");
        let mut waits = BTreeMap::new();
        let mut add = |x: &str, deps: &[&Address]| {
            waits.insert(a(x), deps.iter().map(|d| (*d).clone()).collect());
        };
        add("cluster.cluster.c", &[]);
        for crd in ["a", "b", "c", "d"] {
            add(
                &format!("gateway.object.customresourcedefinition/{crd}"),
                &[&cluster],
            );
        }
        add("mesh.object.namespace/istio-system", &[&cluster]);
        add(
            "mesh.helm_release.istio-base",
            &[&a("mesh.object.namespace/istio-system")],
        );
        add(
            "mesh.helm_release.istio-cni",
            &[&a("mesh.helm_release.istio-base")],
        );
        add(
            "mesh.helm_release.istiod",
            &[&a("mesh.helm_release.istio-cni")],
        );
        add(
            "gateway.object.httproute/d/r",
            &[
                &a("gateway.object.customresourcedefinition/a"),
                &a("mesh.helm_release.istiod"),
            ],
        );
        waits
    }

    #[test]
    fn a_change_in_front_of_a_long_chain_comes_first() {
        let waits = environment();
        let p = priorities(&waits, cost);
        assert_eq!(p[&a("gateway.object.httproute/d/r")], 1);
        assert_eq!(p[&a("mesh.helm_release.istiod")], 11);
        assert_eq!(p[&a("mesh.object.namespace/istio-system")], 32);
        assert_eq!(p[&a("gateway.object.customresourcedefinition/a")], 2);
        assert_eq!(p[&a("gateway.object.customresourcedefinition/b")], 1);
        assert_eq!(p[&a("cluster.cluster.c")], 33);

        // Once the cluster is done, the namespace starts before the CRDs listed before it.
        let waiting: Vec<(Address, BTreeSet<Address>)> = waits
            .iter()
            .filter(|(k, _)| k.to_string() != "cluster.cluster.c")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let done = BTreeSet::from([a("cluster.cluster.c")]);
        let first = next_ready(&waiting, |x| x, &done, &p).unwrap();
        assert_eq!(waiting[first].0, a("mesh.object.namespace/istio-system"));
    }

    #[test]
    fn only_ready_changes_start_and_equals_go_in_plan_order() {
        let waits = environment();
        let p = priorities(&waits, cost);
        let waiting: Vec<(Address, BTreeSet<Address>)> = waits
            .iter()
            .filter(|(k, _)| {
                k.to_string().contains("customresourcedefinition")
                    || k.to_string().contains("istiod")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // istiod (priority 11) is not ready: of the CRDs, `a` (2) beats `b`, `c`, `d` (1).
        let done = BTreeSet::from([a("cluster.cluster.c")]);
        let first = next_ready(&waiting, |x| x, &done, &p).unwrap();
        assert_eq!(
            waiting[first].0,
            a("gateway.object.customresourcedefinition/a")
        );
        let rest: Vec<(Address, BTreeSet<Address>)> = waiting
            .iter()
            .filter(|(k, _)| k.to_string().ends_with("/c") || k.to_string().ends_with("/b"))
            .cloned()
            .collect();
        let first = next_ready(&rest, |x| x, &done, &p).unwrap();
        assert_eq!(
            rest[first].0,
            a("gateway.object.customresourcedefinition/b")
        );
        // Nothing ready: nothing starts.
        assert_eq!(next_ready(&waiting, |x| x, &BTreeSet::new(), &p), None);
    }

    #[test]
    fn a_cycle_does_not_loop() {
        let mut waits = BTreeMap::new();
        waits.insert(
            a("m.object.namespace/x"),
            BTreeSet::from([a("m.object.namespace/y")]),
        );
        waits.insert(
            a("m.object.namespace/y"),
            BTreeSet::from([a("m.object.namespace/x")]),
        );
        let p = priorities(&waits, cost);
        assert!(p.values().all(|&v| v <= 2));
    }
}
