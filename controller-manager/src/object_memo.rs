//! What a controller decided about each cached object on its last pass,
//! remembered by the object itself, so that a pass looks again only at the
//! objects the cache replaced since.
//!
//! The replication manager reconciles every RC on each batch of pod
//! changes (100 ms) and sorts all of an RC's pods each time. At 30,000
//! pods in 30 RCs that pass, string compares on a thousand pods per RC
//! that are no longer in the CPU's caches, was two thirds of the
//! controller manager's CPU, while a batch changes only a handful of an
//! RC's pods. The cache swaps in a new `Arc` for every changed object, so
//! an object whose `Arc` is the one seen last time is the same version,
//! and what was decided about it still holds.
//!
//! An entry keeps a `Weak` of its object: the allocation (not the object,
//! which is dropped as usual) stays reserved while the entry lives, so an
//! address can never stand for two versions. Entries last one pass after
//! their object was last seen.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// Decisions of type `V` about objects of type `K`, by object.
pub(crate) struct ObjectMemo<K, V> {
    pass: u64,
    // The keys are addresses: foldhash rather than std's SipHash, whose
    // resistance to chosen keys buys nothing here and costs a third of a
    // lookup.
    entries: HashMap<usize, Remembered<K, V>, foldhash::fast::RandomState>,
}

struct Remembered<K, V> {
    /// Holds the address (see the module's doc).
    _object: Weak<K>,
    /// The last pass that saw the object.
    seen: u64,
    decision: V,
}

impl<K, V> Default for ObjectMemo<K, V> {
    fn default() -> Self {
        Self {
            pass: 0,
            entries: HashMap::default(),
        }
    }
}

impl<K, V: Copy> ObjectMemo<K, V> {
    /// Starts a pass over the objects.
    pub(crate) fn begin(&mut self) {
        self.pass += 1;
    }

    /// What was decided about `object` if this very version was seen
    /// before, else `decide(object)`, remembered.
    pub(crate) fn decision(&mut self, object: &Arc<K>, decide: impl FnOnce(&K) -> V) -> V {
        let pass = self.pass;
        match self.entries.entry(Arc::as_ptr(object) as usize) {
            Entry::Occupied(mut entry) => {
                let remembered = entry.get_mut();
                remembered.seen = pass;
                remembered.decision
            }
            Entry::Vacant(entry) => {
                let decision = decide(object);
                entry.insert(Remembered {
                    _object: Arc::downgrade(object),
                    seen: pass,
                    decision,
                });
                decision
            }
        }
    }

    /// Ends a pass: forgets the objects it did not see (replaced or gone).
    pub(crate) fn end(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, remembered| remembered.seen == pass);
    }

    /// How many objects are remembered.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one pass over `objects`, counting the decisions made afresh.
    fn pass(memo: &mut ObjectMemo<String, usize>, objects: &[Arc<String>]) -> (Vec<usize>, usize) {
        let mut fresh = 0;
        memo.begin();
        let decisions = objects
            .iter()
            .map(|o| {
                memo.decision(o, |s| {
                    fresh += 1;
                    s.len()
                })
            })
            .collect();
        memo.end();
        (decisions, fresh)
    }

    #[test]
    fn only_objects_not_seen_in_this_version_are_decided_again() {
        let mut memo = ObjectMemo::default();
        let a = Arc::new("a".to_string());
        let b = Arc::new("bb".to_string());
        assert_eq!(pass(&mut memo, &[a.clone(), b.clone()]), (vec![1, 2], 2));
        assert_eq!(pass(&mut memo, &[a.clone(), b.clone()]), (vec![1, 2], 0));
        // b replaced by a new version with the same content, a gone.
        let b2 = Arc::new("bbb".to_string());
        drop(b);
        assert_eq!(pass(&mut memo, std::slice::from_ref(&b2)), (vec![3], 1));
        assert_eq!(memo.len(), 1, "a and the old b are forgotten");
    }

    #[test]
    fn a_remembered_address_is_not_reused_for_another_object() {
        let mut memo = ObjectMemo::default();
        let first = Arc::new("first".to_string());
        let weak = Arc::downgrade(&first);
        pass(&mut memo, &[first]);
        // The object is dropped, but its allocation is held by the memo:
        // no new object of the same size gets its address.
        assert!(weak.upgrade().is_none());
        let others: Vec<Arc<String>> = (0..1000).map(|i| Arc::new(i.to_string())).collect();
        assert!(others.iter().all(|o| Arc::as_ptr(o) != weak.as_ptr()));
        // Forgotten once a pass no longer sees it.
        pass(&mut memo, &[]);
        assert_eq!(memo.len(), 0);
    }
}
