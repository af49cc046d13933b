//! A secondary index over a reflected cache (client-go's `Indexer`): the
//! objects under one key (a pod's controlling owner, say) without a pass
//! over the whole cache.
//!
//! kube's reflector store has no index of its own. A controller that found
//! an owner's pods by reading every cached pod did that for every owner on
//! every batch of changes: at 10,000 pods in 10 RCs the replication manager
//! spent a fifth of the machine on it (#19). The index holds the store's
//! own `Arc` of each object and swaps it for the new one as each change is
//! applied, so it costs pointers, not copies, and holds no replaced version
//! longer than the store does (one event at most).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

/// What an object is indexed under; `None` leaves it out.
pub type IndexKey<K> = fn(&K) -> Option<String>;

/// The objects of a [`Store`] by an [`IndexKey`], kept in step with the
/// store by the reflector loop ([`crate::reflect_indexed`]), which applies
/// each watch event to the store first and to the index next. A reader
/// between the two sees the index one event behind the store, as if the
/// watch were one event later.
pub struct CacheIndex<K: Resource<DynamicType = ()> + 'static> {
    store: Store<K>,
    key: IndexKey<K>,
    refs: Arc<RwLock<Refs<K>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for CacheIndex<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            key: self.key,
            refs: self.refs.clone(),
        }
    }
}

struct Refs<K: Resource<DynamicType = ()> + 'static> {
    /// The key each indexed object is under, to move it when it changes.
    key_of: HashMap<ObjectRef<K>, Arc<str>>,
    by_key: HashMap<Arc<str>, HashMap<ObjectRef<K>, Arc<K>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Default for Refs<K> {
    fn default() -> Self {
        Self {
            key_of: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + 'static> Refs<K> {
    fn remove(&mut self, object: &ObjectRef<K>) {
        let Some(old) = self.key_of.remove(object) else {
            return;
        };
        if let Some(set) = self.by_key.get_mut(&old) {
            set.remove(object);
            if set.is_empty() {
                self.by_key.remove(&old);
            }
        }
    }

    fn insert(&mut self, r: ObjectRef<K>, key: &str, object: Arc<K>) {
        if self.key_of.get(&r).is_some_and(|k| &**k == key) {
            if let Some(slot) = self.by_key.get_mut(key).and_then(|m| m.get_mut(&r)) {
                *slot = object;
                return;
            }
        }
        self.remove(&r);
        let key: Arc<str> = match self.by_key.get_key_value(key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(key),
        };
        self.by_key
            .entry(key.clone())
            .or_default()
            .insert(r.clone(), object);
        self.key_of.insert(r, key);
    }
}

/// One state of a [`CacheIndex`], read-locked while it lives
/// ([`CacheIndex::view`]).
pub struct IndexView<'a, K: Resource<DynamicType = ()> + 'static> {
    refs: RwLockReadGuard<'a, Refs<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> IndexView<'_, K> {
    /// The objects under `key`, in no particular order.
    pub fn objects(&self, key: &str) -> impl Iterator<Item = &Arc<K>> + '_ {
        self.refs
            .by_key
            .get(key)
            .into_iter()
            .flat_map(HashMap::values)
    }

    /// The keys that have objects under them.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.refs.by_key.keys().map(|key| &**key)
    }

    /// The indexed object `reference` names (one without a key is not
    /// indexed).
    pub fn object(&self, reference: &ObjectRef<K>) -> Option<&Arc<K>> {
        let key = self.refs.key_of.get(reference)?;
        self.refs.by_key.get(key)?.get(reference)
    }
}

/// The store's key of `object`, without the extras it does not compare.
fn reference<K: Resource<DynamicType = ()>>(object: &K) -> ObjectRef<K> {
    let r = ObjectRef::new(&object.name_any());
    match object.namespace() {
        Some(ns) => r.within(&ns),
        None => r,
    }
}

impl<K> CacheIndex<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// An index of `store` under `key`, filled from what the store holds now.
    pub fn new(store: Store<K>, key: IndexKey<K>) -> Self {
        let index = Self {
            store,
            key,
            refs: Arc::default(),
        };
        index.rebuild();
        index
    }

    fn read(&self) -> RwLockReadGuard<'_, Refs<K>> {
        self.refs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Refs<K>> {
        self.refs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached objects under `key` now, in no particular order.
    pub fn get(&self, key: &str) -> Vec<Arc<K>> {
        self.view().objects(key).cloned().collect()
    }

    /// The index as it is now, borrowed rather than copied out: a
    /// controller that counts an owner's thousand objects on every pass
    /// need not clone (and then drop) a thousand `Arc`s to do it, and what
    /// it reads through one view is one state of the cache. The index is
    /// read-locked while the view lives, so the reflector waits to apply
    /// the next change: keep it short (it cannot be held across an
    /// `.await` of a `Send` future) and clone what must outlive it.
    pub fn view(&self) -> IndexView<'_, K> {
        IndexView { refs: self.read() }
    }

    /// The cached object `reference` names, indexed or not (the store's
    /// copy).
    pub fn cached(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        self.store.get(reference)
    }

    /// Brings the index up to date with `event`, which the store has
    /// already applied. A relist is applied whole at its end, as the store
    /// swaps its buffer in then.
    pub fn apply(&self, event: &watcher::Event<K>) {
        match event {
            watcher::Event::Apply(object) => {
                let r = reference(object);
                // The store's own copy, so that both share one object.
                match ((self.key)(object), self.store.get(&r)) {
                    (Some(key), Some(stored)) => self.write().insert(r, &key, stored),
                    _ => self.write().remove(&r),
                }
            }
            watcher::Event::Delete(object) => self.write().remove(&reference(object)),
            watcher::Event::InitDone => self.rebuild(),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// Indexes the store as it is now, from scratch.
    pub fn rebuild(&self) {
        let mut fresh = Refs::default();
        for object in self.store.state() {
            if let Some(key) = (self.key)(&object) {
                fresh.insert(reference(object.as_ref()), &key, object);
            }
        }
        *self.write() = fresh;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;

    fn pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        }))
        .unwrap()
    }

    fn app(pod: &Pod) -> Option<String> {
        pod.labels().get("app").filter(|a| !a.is_empty()).cloned()
    }

    fn names(mut pods: Vec<Arc<Pod>>) -> Vec<String> {
        pods.sort_by_key(|p| p.name_any());
        pods.iter().map(|p| p.name_any()).collect()
    }

    /// Applies `event` to the store, then to the index, as the reflector
    /// loop does.
    fn step(
        writer: &mut reflector::store::Writer<Pod>,
        index: &CacheIndex<Pod>,
        event: Event<Pod>,
    ) {
        writer.apply_watcher_event(&event);
        index.apply(&event);
    }

    #[test]
    fn objects_move_between_keys_as_they_change_and_leave_when_deleted() {
        let (store, mut writer) = reflector::store();
        let index = CacheIndex::new(store, app);
        step(&mut writer, &index, Event::Apply(pod("a", "web")));
        step(&mut writer, &index, Event::Apply(pod("b", "web")));
        step(&mut writer, &index, Event::Apply(pod("c", "db")));
        assert_eq!(names(index.get("web")), ["a", "b"]);
        assert_eq!(names(index.get("db")), ["c"]);

        step(&mut writer, &index, Event::Apply(pod("b", "db")));
        assert_eq!(names(index.get("web")), ["a"]);
        assert_eq!(names(index.get("db")), ["b", "c"]);

        // An object that no longer has a key leaves the index.
        step(&mut writer, &index, Event::Apply(pod("a", "")));
        assert!(index.get("web").is_empty());
        assert!(!index.read().by_key.contains_key("web"));

        step(&mut writer, &index, Event::Delete(pod("c", "db")));
        assert_eq!(names(index.get("db")), ["b"]);
        assert_eq!(index.read().key_of.len(), 1);
    }

    #[test]
    fn the_index_shares_the_store_s_object_and_lets_a_replaced_one_go() {
        let (store, mut writer) = reflector::store();
        let index = CacheIndex::new(store.clone(), app);
        step(&mut writer, &index, Event::Apply(pod("a", "web")));
        let first = Arc::downgrade(&index.get("web")[0]);
        let stored = store.get(&ObjectRef::new("a").within("default")).unwrap();
        assert!(Arc::ptr_eq(&first.upgrade().unwrap(), &stored));
        drop(stored);
        let mut newer = pod("a", "web");
        newer.metadata.resource_version = Some("2".into());
        step(&mut writer, &index, Event::Apply(newer));
        let found = index.get("web");
        assert_eq!(found[0].resource_version().as_deref(), Some("2"));
        assert!(
            first.upgrade().is_none(),
            "the replaced version is still held"
        );
    }

    #[test]
    fn a_view_lends_the_objects_without_copies() {
        let (store, mut writer) = reflector::store();
        let index = CacheIndex::new(store, app);
        step(&mut writer, &index, Event::Apply(pod("a", "web")));
        step(&mut writer, &index, Event::Apply(pod("b", "db")));
        step(&mut writer, &index, Event::Apply(pod("c", "")));
        let held = Arc::strong_count(&index.get("web")[0]);
        {
            let view = index.view();
            let (mut seen, counts): (Vec<String>, Vec<usize>) = ["web", "db", "missing"]
                .iter()
                .flat_map(|key| view.objects(key))
                .map(|p| (p.name_any(), Arc::strong_count(p)))
                .unzip();
            seen.sort();
            assert_eq!(seen, ["a", "b"]);
            // The store's and the index's references only.
            assert!(counts.iter().all(|&n| n == held - 1), "{counts:?}");
            let a = view.object(&ObjectRef::new("a").within("default"));
            assert_eq!(a.map(|p| p.name_any()).as_deref(), Some("a"));
            assert!(view.object(&ObjectRef::new("a").within("other")).is_none());
            // In the store, but under no key.
            assert!(view
                .object(&ObjectRef::new("c").within("default"))
                .is_none());
            let mut keys: Vec<&str> = view.keys().collect();
            keys.sort_unstable();
            assert_eq!(keys, ["db", "web"]);
        }
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_ends() {
        let (store, mut writer) = reflector::store();
        let index = CacheIndex::new(store, app);
        step(&mut writer, &index, Event::Apply(pod("gone", "web")));
        step(&mut writer, &index, Event::Init);
        step(&mut writer, &index, Event::InitApply(pod("kept", "web")));
        // Until the relist ends, the store and the index show the old list.
        assert_eq!(names(index.get("web")), ["gone"]);
        step(&mut writer, &index, Event::InitDone);
        assert_eq!(names(index.get("web")), ["kept"]);
        assert_eq!(index.read().key_of.len(), 1);
    }

    #[test]
    fn an_index_made_over_a_filled_store_holds_its_objects() {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(pod("a", "web")));
        writer.apply_watcher_event(&Event::Apply(pod("b", "")));
        let index = CacheIndex::new(store, app);
        assert_eq!(names(index.get("web")), ["a"]);
        assert_eq!(index.read().key_of.len(), 1);
    }
}
