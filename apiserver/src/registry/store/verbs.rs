//! The [`Rest`] verbs of the generic [`Store`], and the view a watch
//! stream keeps of its request.

use std::sync::Arc;

use api_types::kinds::ResourceKind;
use api_types::FieldError;
use async_trait::async_trait;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::Metadata;
use serde_json::Value;

use super::{
    applied_managed_fields, conflict_backoff, generate_name, matches, now, output, parse_revision,
    patch_error, set_resource_version, Store, MAX_WRITE_ATTEMPTS,
};
use crate::error::{ApiError, Result};
use crate::registry::{
    watch_cache, watch_error, DeleteOptions, EncodedObject, JsonObject, ListQuery, ListResult,
    Patch, Propagation, Rest, Strategy, Subresource, WatchEvent, WatchStream, WriteOptions,
};
use crate::storage::{StorageError, Stored};

impl<S: Strategy> Store<S> {
    /// A create from its decoded object: the server's metadata set, the
    /// strategy's admission and preparation, then the store.
    /// `applied_fields` are the managed fields of an apply.
    async fn create_decoded(
        &self,
        namespace: Option<&str>,
        mut object: S::Object,
        applied_fields: Option<Option<Vec<ManagedFieldsEntry>>>,
        options: &WriteOptions,
    ) -> Result<EncodedObject> {
        let resource = self.resource();
        {
            let meta = object.metadata_mut();
            self.settle_namespace(meta, namespace)?;
            if meta.name.as_deref().unwrap_or("").is_empty() {
                match meta.generate_name.as_deref() {
                    Some(prefix) if !prefix.is_empty() => {
                        meta.name = Some(generate_name(prefix));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            resource.kind,
                            "",
                            &[FieldError::required(
                                "metadata.name",
                                "name or generateName is required",
                            )],
                        ))
                    }
                }
            }
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.creation_timestamp = Some(now());
            meta.generation = Some(1);
            meta.resource_version = None;
            meta.self_link = None;
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            // Kubernetes resets them on create: the creator owns what it set.
            meta.managed_fields = applied_fields.unwrap_or_default();
        }
        let name = object.metadata().name.clone().unwrap_or_default();
        self.strategy.admit_create(&object).await?;
        for warning in self.strategy.admission_warnings(&object).await {
            options.warn(warning);
        }
        self.strategy.prepare_for_create(&mut object).await?;
        // The field set is computed on the JSON tree: built only for a
        // write that names a manager.
        if !options.apply && options.field_manager.is_some() {
            let value = self.encode_value(&object)?;
            self.record_manager(None, &value, &mut object, Subresource::Main, options);
        }
        let allocated = self
            .strategy
            .allocate(&mut object, None, options.dry_run)
            .await?;
        let result = self.store_new(namespace, &name, &mut object, options).await;
        if result.is_err() && allocated && !options.dry_run {
            self.strategy.release(&object, None).await;
        }
        result
    }
}

#[async_trait]
impl<S: Strategy> Rest for Store<S> {
    fn resource(&self) -> &'static ResourceKind {
        self.strategy.resource()
    }

    async fn create_encoded(
        &self,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<EncodedObject> {
        let applied_fields = applied_managed_fields(&body, options);
        let object = self.decode(body, Some(options))?;
        self.create_decoded(namespace, object, applied_fields, options)
            .await
    }

    async fn create_json(
        &self,
        namespace: Option<&str>,
        body: &JsonObject,
        options: &WriteOptions,
    ) -> Result<EncodedObject> {
        if options.apply {
            // Apply records the fields the request set, read off its tree.
            return self.create_encoded(namespace, body.tree()?, options).await;
        }
        let object = self.decode_json(body, Some(options))?;
        self.create_decoded(namespace, object, None, options).await
    }

    async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Value> {
        output(&self.read(namespace, name).await?)
    }

    async fn list(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult> {
        self.list_page(namespace, query).await
    }

    async fn list_encoded(
        &self,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Option<Vec<u8>>> {
        self.list_encoded_from_cache(namespace, query).await
    }

    async fn update(
        &self,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<(Value, bool)> {
        let precondition = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(parse_revision)
            .transpose()?;
        self.write_loop(namespace, name, subresource, options, |_| {
            Ok((body.clone(), precondition))
        })
        .await
    }

    async fn patch(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<Value> {
        let kind = self.resource().kind;
        let plural = self.resource().plural;
        if let Patch::Apply { config, force } = patch {
            return self
                .server_side_apply(namespace, name, config, *force, options)
                .await;
        }
        let (value, _) = self
            .write_loop(namespace, name, subresource, options, |current| {
                let Some(current) = current else {
                    return Err(ApiError::not_found(plural, name));
                };
                let current_rv = current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let patched = match patch {
                    Patch::Merge(p) => {
                        let mut target = current;
                        api_types::patch::apply_merge_patch(&mut target, p);
                        target
                    }
                    Patch::Json(p) => {
                        let mut target = current;
                        api_types::patch::apply_json_patch(&mut target, p).map_err(patch_error)?;
                        target
                    }
                    // Linear, but a 465 KB patch still takes milliseconds:
                    // off the async worker (`body::heavy`).
                    Patch::Strategic(p) => crate::http::body::heavy(p, || {
                        api_types::patch::apply_strategic_merge_patch(kind, &current, p)
                    })
                    .map_err(patch_error)?,
                    Patch::Apply { .. } => {
                        return Err(ApiError::internal("server-side apply took the patch path"))
                    }
                };
                // A patch that names a resourceVersion is conditional on it.
                let patched_rv = patched
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let precondition = if patched_rv != current_rv {
                    patched_rv.as_deref().map(parse_revision).transpose()?
                } else {
                    None
                };
                Ok((patched, precondition))
            })
            .await?;
        Ok(value)
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value> {
        let resource = self.resource();
        let key = self.key(namespace, name);
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            conflict_backoff(attempt).await;
            let current = self.read(namespace, name).await?;
            let value = output(&current)?;
            let object: S::Object = self.decode(value.clone(), None)?;
            if let Some(uid) = &options.precondition_uid {
                if object.metadata().uid.as_ref() != Some(uid) {
                    return Err(ApiError::new(
                        api_types::status::Reason::Conflict,
                        format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", object.metadata().uid.clone().unwrap_or_default()),
                    ));
                }
            }
            if let Some(rv) = &options.precondition_resource_version {
                if parse_revision(rv)? != current.mod_revision {
                    return Err(ApiError::stale(resource.plural, name));
                }
            }
            self.strategy.check_delete(&object)?;
            if let Some(grace) = self
                .strategy
                .graceful_deletion(&object, options.grace_period_seconds)
            {
                let mut marked = object.clone();
                let meta = marked.metadata_mut();
                let already = meta.deletion_grace_period_seconds;
                if already.is_some_and(|a| a <= grace) {
                    // Already going, at least as fast as asked.
                    return Ok(value);
                }
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                meta.deletion_timestamp = Some(api_types::v1::Time(
                    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at),
                ));
                meta.deletion_grace_period_seconds = Some(grace);
                self.strategy.on_delete_marked(&mut marked);
                match self
                    .store_marked(&key, &current, &marked, options.dry_run, name)
                    .await?
                {
                    Some(marked_value) => return Ok(marked_value),
                    None => continue,
                }
            }
            // Finalizers hold the object (marked for deletion) until the
            // controllers that own them remove the last one.
            let requested = options
                .propagation
                .filter(|_| self.strategy.has_collected_dependents())
                .and_then(Propagation::finalizer);
            let mut finalizers = object.metadata().finalizers.clone().unwrap_or_default();
            if let Some(finalizer) = requested {
                if !finalizers.iter().any(|f| f == finalizer) {
                    finalizers.push(finalizer.to_string());
                }
            }
            if !finalizers.is_empty() {
                let mut marked = object.clone();
                let meta = marked.metadata_mut();
                // Due now (grace 0): a pod's graceful deletion ends here too.
                let due = meta.deletion_timestamp.is_some()
                    && meta.deletion_grace_period_seconds == Some(0);
                if due && meta.finalizers.as_ref() == Some(&finalizers) {
                    return Ok(value);
                }
                meta.finalizers = Some(finalizers);
                if !due {
                    meta.deletion_timestamp = Some(now());
                    meta.deletion_grace_period_seconds = Some(0);
                }
                match self
                    .store_marked(&key, &current, &marked, options.dry_run, name)
                    .await?
                {
                    Some(marked_value) => return Ok(marked_value),
                    None => continue,
                }
            }
            if options.dry_run {
                // The object as it is: what the delete would have removed.
                return Ok(value);
            }
            match self.storage.delete(&key, Some(current.mod_revision)).await {
                Ok((last, revision)) => {
                    self.strategy.after_delete(&object).await;
                    let mut value = output(&last)?;
                    set_resource_version(&mut value, revision);
                    return Ok(value);
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_storage(e, resource.plural, name)),
            }
        }
        Err(ApiError::stale(resource.plural, name))
    }

    fn latest(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Stored>> {
        self.cache.as_ref()?.latest(&self.key(namespace, name))
    }

    fn cache_synced(&self) -> Option<bool> {
        self.cache.as_ref().map(|c| c.is_synced())
    }

    async fn watch(&self, namespace: Option<&str>, query: &ListQuery) -> Result<WatchStream> {
        let prefix = self.resource().prefix(namespace);
        let start = query
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0")
            .map(parse_revision)
            .transpose()?;
        let (initial, after) = match start {
            Some(revision) => (Vec::new(), revision),
            None => {
                // Kubernetes starts such a watch with the current state as
                // synthetic ADDED events.
                // From the watch cache's state, as Kubernetes' cacher
                // starts it: the stream then continues from the same
                // cache, so nothing falls in between.
                let mut all = ListQuery {
                    labels: query.labels.clone(),
                    fields: query.fields.clone(),
                    resource_version: Some("0".into()),
                    ..ListQuery::default()
                };
                all.limit = None;
                let list = self.list_page(namespace, &all).await?;
                let revision = parse_revision(&list.resource_version)?;
                let events = list
                    .items
                    .into_iter()
                    .map(|object| WatchEvent::new("ADDED", object))
                    .collect();
                (events, revision)
            }
        };
        let view = Arc::new(StoreView {
            query: query.clone(),
            resource: self.resource(),
        });
        let index = self.cache.as_ref().and_then(|cache| cache.index());
        let cached = self.cache.as_ref().and_then(|cache| {
            let pinned = cache
                .index_field()
                .and_then(|field| query.fields.requires_exact_match(field));
            cache.subscribe(&prefix, after, pinned)
        });
        let mapped = match cached {
            Some(events) => events
                .filter_map(move |event| {
                    let view = view.clone();
                    async move { view.convert(event) }
                })
                .boxed(),
            None => {
                self.storage
                    .watch(&prefix, after)
                    .await?
                    .filter_map(move |event| {
                        let view = view.clone();
                        async move {
                            match event {
                                Ok(event) => view
                                    .convert(Arc::new(watch_cache::CachedEvent::new(event, index))),
                                Err(error) => Some(watch_error(error.into())),
                            }
                        }
                    })
                    .boxed()
            }
        };
        Ok(futures::stream::iter(initial).chain(mapped).boxed())
    }
}

/// What a watch stream keeps of its request once started, so the stream
/// does not borrow the store.
struct StoreView {
    query: ListQuery,
    resource: &'static ResourceKind,
}

impl StoreView {
    /// The event this watcher sees of a change, applying its selectors the
    /// way Kubernetes does: an object that stops matching is `DELETED` for
    /// it, one that starts matching `ADDED`.
    fn convert(&self, event: Arc<watch_cache::CachedEvent>) -> Option<WatchEvent> {
        match self.convert_unparsed(&event) {
            Some(converted) => converted,
            None => self.convert_parsed(&event),
        }
    }

    /// [`Self::convert`] from the change's trees.
    fn convert_parsed(&self, event: &watch_cache::CachedEvent) -> Option<WatchEvent> {
        let was_matching = event
            .previous()
            .is_some_and(|v| matches(self.resource, &self.query, v));
        if !event.is_delete() && event.current().is_none() {
            // A stored value that is not JSON: nothing to show.
            return None;
        }
        match event.current_shared() {
            Some(object) => {
                let kind = match (was_matching, matches(self.resource, &self.query, object)) {
                    (false, true) => "ADDED",
                    (true, true) => "MODIFIED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                };
                Some(WatchEvent::shared(
                    kind,
                    object.clone(),
                    event.current_json(),
                ))
            }
            None => {
                if !was_matching {
                    return None;
                }
                let mut object = event.previous()?.clone();
                set_resource_version(&mut object, event.revision);
                Some(WatchEvent::new("DELETED", object))
            }
        }
    }

    /// [`Self::convert`] without parsing the change, for a watcher whose
    /// selectors read nothing but the cache's index field (or nothing at
    /// all): from the change's [`Glimpse`](watch_cache::Glimpse) and its
    /// JSON. `None` when the change has to be parsed after all.
    fn convert_unparsed(
        &self,
        event: &Arc<watch_cache::CachedEvent>,
    ) -> Option<Option<WatchEvent>> {
        let fields = self.query.fields.requirements();
        // The field the change's glimpse read: the cache's index, if the
        // change came with it.
        let only_index = fields
            .iter()
            .all(|r| Some(r.field.as_str()) == event.index_field());
        if !self.query.labels.is_empty() || !only_index {
            return None;
        }
        let glimpse = event.glimpse()?;
        let selects = |value: &Option<String>| {
            value
                .as_deref()
                .is_some_and(|value| fields.iter().all(|r| r.matches_value(Some(value))))
        };
        let kind = match (selects(&glimpse.previous), selects(&glimpse.current)) {
            (false, true) => "ADDED",
            (true, true) => "MODIFIED",
            (true, false) => "DELETED",
            (false, false) => return Some(None),
        };
        // Still matching, or no longer: the object as it is now, as the
        // parsing path answers; deleted: as it was, at the delete's
        // resourceVersion.
        let before = event.is_delete();
        let encoded = if before {
            event.previous_json()
        } else {
            event.current_json()
        }?;
        Some(Some(WatchEvent::of_change(
            kind,
            event.clone(),
            before,
            encoded,
        )))
    }
}

#[cfg(test)]
mod tests {
    use api_types::fields::FieldSelector;
    use serde_json::{json, Value};

    use super::*;
    use crate::registry::watch_cache::{CachedEvent, Index};
    use crate::storage::WatchEvent as StorageEvent;

    fn pod(node: &str, app: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap()
    }

    fn change(before: Option<&[u8]>, after: Option<&[u8]>) -> Arc<CachedEvent> {
        change_indexed(before, after, Some(Index::POD_NODE))
    }

    fn change_indexed(
        before: Option<&[u8]>,
        after: Option<&[u8]>,
        index: Option<Index>,
    ) -> Arc<CachedEvent> {
        let key = "/registry/pods/default/p".to_string();
        let previous = before.map(<[u8]>::to_vec);
        Arc::new(CachedEvent::new(
            match after {
                Some(value) => StorageEvent::Put {
                    current: Stored {
                        key,
                        value: value.to_vec(),
                        mod_revision: 9,
                        create_revision: 1,
                    },
                    previous,
                },
                None => StorageEvent::Delete {
                    key,
                    revision: 9,
                    previous,
                },
            },
            index,
        ))
    }

    fn view(fields: &str) -> StoreView {
        StoreView {
            query: ListQuery {
                fields: FieldSelector::parse(fields).unwrap(),
                ..ListQuery::default()
            },
            resource: &api_types::kinds::PODS,
        }
    }

    /// What a watcher is sent: its kind, its JSON and its tree.
    fn seen(event: Option<WatchEvent>) -> Option<(&'static str, Value, Value)> {
        event.map(|e| {
            let json = serde_json::from_slice(e.encoded.as_deref().unwrap_or(b"null")).unwrap();
            (e.kind, json, Value::clone(&e.object()))
        })
    }

    /// The watchers that select by nothing or by the index field get from
    /// the change's bytes what parsing it would give them, without the
    /// parse; a change the glimpse cannot read goes the parsing way.
    #[test]
    fn a_change_converted_unparsed_is_what_parsing_it_gives() {
        let (unbound, on_a, on_b) = (pod("", "web"), pod("a", "web"), pod("b", "web"));
        let changes = [
            ("create", change(None, Some(&unbound))),
            ("bind", change(Some(&unbound), Some(&on_a))),
            ("status", change(Some(&on_a), Some(&pod("a", "db")))),
            ("move", change(Some(&on_a), Some(&on_b))),
            ("delete", change(Some(&on_a), None)),
        ];
        for selector in ["", "spec.nodeName=a", "spec.nodeName=", "spec.nodeName!="] {
            let view = view(selector);
            for (what, event) in &changes {
                let unparsed = view
                    .convert_unparsed(event)
                    .unwrap_or_else(|| panic!("{what} for {selector:?} was parsed"));
                let parsed = view.convert_parsed(event);
                let (unparsed, parsed) = (seen(unparsed), seen(parsed));
                match (&unparsed, &parsed) {
                    (Some((kind, json, tree)), Some((want_kind, _, want))) => {
                        assert_eq!(
                            (kind, json, tree),
                            (want_kind, want, want),
                            "{what} {selector:?}"
                        );
                    }
                    _ => assert_eq!(unparsed, parsed, "{what} {selector:?}"),
                }
            }
        }
        // Nothing above needed a tree but the tests' own `object()` calls on
        // the parsing path's answers.
        let fresh = change(Some(&unbound), Some(&on_a));
        let converted = view("spec.nodeName=a")
            .convert(fresh.clone())
            .expect("ADDED");
        assert_eq!(converted.kind, "ADDED");
        assert!(!fresh.is_parsed(), "a node's watcher parsed the change");

        // A label selector, another field, or a value the glimpse cannot
        // read: parsed.
        let labelled = StoreView {
            query: ListQuery {
                labels: api_types::labels::Selector::parse("app=web").unwrap(),
                ..ListQuery::default()
            },
            ..view("")
        };
        assert!(labelled.convert_unparsed(&fresh).is_none());
        assert!(view("status.phase=Running")
            .convert_unparsed(&fresh)
            .is_none());
        let odd = serde_json::to_vec(&json!({"metadata": {"name": "p"}, "spec": {"nodeName": 7}}))
            .unwrap();
        let odd = change(None, Some(&odd));
        assert!(view("").convert_unparsed(&odd).is_none());
        assert_eq!(seen(view("").convert(odd)).map(|s| s.0), Some("ADDED"));

        // A change read without the index (from etcd, for a resource
        // without a cache): its glimpse knows no node, so a node's watcher
        // parses it rather than miss it.
        let unindexed = change_indexed(Some(&unbound), Some(&on_a), None);
        assert!(view("spec.nodeName=a")
            .convert_unparsed(&unindexed)
            .is_none());
        assert_eq!(
            seen(view("spec.nodeName=a").convert(unindexed)).map(|s| s.0),
            Some("ADDED")
        );
    }
}
