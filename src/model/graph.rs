//! A dependency graph over addresses: a creation order where every resource comes after what it
//! depends on, the reverse for deletion, and cycle detection (the schema cannot express a cycle
//! today, but the graph type must not assume so).

use std::collections::{BTreeMap, BTreeSet};

use super::Address;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleError {
    /// The resources on (or waiting behind) a cycle.
    pub involved: Vec<Address>,
}

impl std::fmt::Display for CycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.involved.iter().map(|a| a.to_string()).collect();
        write!(f, "dependency cycle among: {}", names.join(", "))
    }
}

impl std::error::Error for CycleError {}

#[derive(Debug, Clone)]
pub struct Graph {
    /// node → what it depends on (only nodes in the graph).
    deps: BTreeMap<Address, BTreeSet<Address>>,
    order: Vec<Address>,
}

impl Graph {
    /// Builds the graph; edges to nodes not in the graph are ignored (they are satisfied
    /// elsewhere, e.g. by live resources). Fails on a cycle.
    pub fn new(
        nodes: impl IntoIterator<Item = (Address, Vec<Address>)>,
    ) -> Result<Graph, CycleError> {
        let raw: Vec<(Address, Vec<Address>)> = nodes.into_iter().collect();
        let names: BTreeSet<Address> = raw.iter().map(|(a, _)| a.clone()).collect();
        let mut deps: BTreeMap<Address, BTreeSet<Address>> = BTreeMap::new();
        for (a, ds) in raw {
            let entry = deps.entry(a).or_default();
            entry.extend(ds.into_iter().filter(|d| names.contains(d)));
        }
        // Kahn's algorithm; ties broken by address order so the result is deterministic.
        let mut remaining: BTreeMap<Address, usize> =
            deps.iter().map(|(a, d)| (a.clone(), d.len())).collect();
        let mut dependents: BTreeMap<&Address, Vec<&Address>> = BTreeMap::new();
        for (a, ds) in &deps {
            for d in ds {
                dependents.entry(d).or_default().push(a);
            }
        }
        let mut ready: BTreeSet<Address> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(a, _)| a.clone())
            .collect();
        let mut order = Vec::with_capacity(deps.len());
        while let Some(a) = ready.pop_first() {
            remaining.remove(&a);
            if let Some(ds) = dependents.get(&a) {
                for d in ds {
                    if let Some(n) = remaining.get_mut(*d) {
                        *n -= 1;
                        if *n == 0 {
                            ready.insert((*d).clone());
                        }
                    }
                }
            }
            order.push(a);
        }
        if !remaining.is_empty() {
            return Err(CycleError {
                involved: remaining.into_keys().collect(),
            });
        }
        Ok(Graph { deps, order })
    }

    /// Every node after all of its dependencies.
    pub fn creation_order(&self) -> &[Address] {
        &self.order
    }

    /// Every node before all of its dependencies.
    pub fn deletion_order(&self) -> Vec<Address> {
        self.order.iter().rev().cloned().collect()
    }

    /// What `a` depends on directly.
    pub fn dependencies(&self, a: &Address) -> impl Iterator<Item = &Address> {
        self.deps.get(a).into_iter().flatten()
    }

    /// What depends on `a` directly.
    pub fn dependents<'s>(&'s self, a: &'s Address) -> impl Iterator<Item = &'s Address> + 's {
        self.deps
            .iter()
            .filter(move |(_, ds)| ds.contains(a))
            .map(|(n, _)| n)
    }

    /// Everything that depends on `a`, directly or not.
    pub fn transitive_dependents(&self, a: &Address) -> BTreeSet<Address> {
        let mut out = BTreeSet::new();
        let mut todo = vec![a.clone()];
        while let Some(x) = todo.pop() {
            for d in self.dependents(&x) {
                if out.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn a(kind: Kind, key: &str) -> Address {
        Address::new(kind, key)
    }

    #[test]
    fn orders_dependencies_first_and_reverses_for_deletion() {
        let g = Graph::new(vec![
            (
                a(Kind::new("host"), "h"),
                vec![
                    a(Kind::new("instance_profile"), "h"),
                    a(Kind::new("delivery"), "d"),
                ],
            ),
            (
                a(Kind::new("instance_profile"), "h"),
                vec![a(Kind::new("host_role"), "h")],
            ),
            (a(Kind::new("host_role"), "h"), vec![]),
            (
                a(Kind::new("delivery"), "d"),
                vec![a(Kind::new("stream"), "s"), a(Kind::new("bucket"), "b")],
            ),
            (a(Kind::new("stream"), "s"), vec![]),
            (a(Kind::new("bucket"), "b"), vec![]),
        ])
        .expect("acyclic");
        let order = g.creation_order();
        let idx = |x: &Address| order.iter().position(|o| o == x).expect("present");
        for (node, deps) in [
            (
                a(Kind::new("host"), "h"),
                vec![
                    a(Kind::new("instance_profile"), "h"),
                    a(Kind::new("delivery"), "d"),
                ],
            ),
            (
                a(Kind::new("delivery"), "d"),
                vec![a(Kind::new("stream"), "s"), a(Kind::new("bucket"), "b")],
            ),
            (
                a(Kind::new("instance_profile"), "h"),
                vec![a(Kind::new("host_role"), "h")],
            ),
        ] {
            for d in deps {
                assert!(idx(&d) < idx(&node), "{d} before {node}");
            }
        }
        let del = g.deletion_order();
        assert_eq!(del.first(), order.last());
        assert_eq!(del.len(), 6);
        assert_eq!(
            g.transitive_dependents(&a(Kind::new("host_role"), "h")),
            [
                a(Kind::new("instance_profile"), "h"),
                a(Kind::new("host"), "h")
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn rejects_cycles_naming_the_nodes() {
        let err = Graph::new(vec![
            (
                a(Kind::new("stream"), "x"),
                vec![a(Kind::new("bucket"), "y")],
            ),
            (
                a(Kind::new("bucket"), "y"),
                vec![a(Kind::new("stream"), "x")],
            ),
            (a(Kind::new("host"), "free"), vec![]),
        ])
        .expect_err("cycle");
        assert_eq!(
            err.involved,
            vec![a(Kind::new("bucket"), "y"), a(Kind::new("stream"), "x")]
        );
        assert!(err.to_string().contains("stream.x"));
        // A self-edge is a cycle too.
        assert!(Graph::new(vec![(
            a(Kind::new("host"), "h"),
            vec![a(Kind::new("host"), "h")]
        )])
        .is_err());
    }
}
