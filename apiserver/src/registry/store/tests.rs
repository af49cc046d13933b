//! The generic store on the in-memory storage: what every resource shares,
//! without etcd (the etcd-backed integration tests cover the same paths
//! end to end).

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::ConfigMap;
use api_types::FieldError;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::registry::{DeleteOptions, FieldValidation, ListQuery, Rest, Store, Strategy};
use crate::registry::{Subresource, WriteOptions};
use crate::storage::memory::MemoryStorage;

/// ConfigMaps with no admission and no validation: only the store acts.
struct Plain;

#[async_trait]
impl Strategy for Plain {
    type Object = ConfigMap;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::CONFIG_MAPS
    }

    fn default(&self, _object: &mut ConfigMap) {}

    fn validate(&self, _object: &ConfigMap) -> Vec<FieldError> {
        Vec::new()
    }

    fn validate_update(&self, _new: &ConfigMap, _old: &ConfigMap) -> Vec<FieldError> {
        Vec::new()
    }

    fn has_status_subresource(&self) -> bool {
        false
    }
}

fn store() -> (Store<Plain>, Arc<MemoryStorage>) {
    let storage = Arc::new(MemoryStorage::new());
    (Store::new(Plain, storage.clone()), storage)
}

fn options() -> WriteOptions {
    WriteOptions::new(FieldValidation::Strict)
}

fn config_map(name: &str) -> Value {
    json!({ "metadata": { "name": name }, "data": { "k": "v" } })
}

fn rv(value: &Value) -> String {
    value["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn create(store: &Store<Plain>, name: &str) -> Value {
    store
        .create(Some("default"), config_map(name), &options())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_create_fills_the_metadata_and_a_second_one_conflicts() {
    let (store, _) = store();
    let created = create(&store, "a").await;
    assert_eq!(rv(&created), "1");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let again = store
        .create(Some("default"), config_map("a"), &options())
        .await
        .unwrap_err();
    assert_eq!((again.code(), again.reason()), (409, "AlreadyExists"));
    let generated = store
        .create(
            Some("default"),
            json!({ "metadata": { "generateName": "web-" } }),
            &options(),
        )
        .await
        .unwrap();
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
}

#[tokio::test]
async fn an_update_with_a_stale_resource_version_is_a_conflict() {
    let (store, _) = store();
    let created = create(&store, "a").await;
    let mut first = created.clone();
    first["data"]["k"] = json!("first");
    let (updated, _) = store
        .update(Some("default"), "a", first, Subresource::Main, &options())
        .await
        .unwrap();
    assert_eq!(rv(&updated), "2");
    let mut stale = created;
    stale["data"]["k"] = json!("stale");
    let error = store
        .update(Some("default"), "a", stale, Subresource::Main, &options())
        .await
        .unwrap_err();
    assert_eq!((error.code(), error.reason()), (409, "Conflict"));
    let current = store.get(Some("default"), "a").await.unwrap();
    assert_eq!(current["data"]["k"], "first");
}

#[tokio::test]
async fn a_delete_checks_its_preconditions() {
    let (store, _) = store();
    let created = create(&store, "a").await;
    let wrong_uid = DeleteOptions {
        precondition_uid: Some("not-the-uid".into()),
        ..DeleteOptions::default()
    };
    let error = store
        .delete(Some("default"), "a", &wrong_uid)
        .await
        .unwrap_err();
    assert_eq!(error.code(), 409);
    let stale = DeleteOptions {
        precondition_resource_version: Some("0".into()),
        ..DeleteOptions::default()
    };
    let error = store
        .delete(Some("default"), "a", &stale)
        .await
        .unwrap_err();
    assert_eq!(error.code(), 409);
    let right = DeleteOptions {
        precondition_uid: created["metadata"]["uid"].as_str().map(str::to_string),
        precondition_resource_version: Some(rv(&created)),
        ..DeleteOptions::default()
    };
    store.delete(Some("default"), "a", &right).await.unwrap();
    let gone = store.get(Some("default"), "a").await.unwrap_err();
    assert_eq!(gone.code(), 404);
}

#[tokio::test]
async fn finalizers_hold_a_deleted_object_until_they_are_cleared() {
    let (store, _) = store();
    let mut held = config_map("a");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    store
        .create(Some("default"), held, &options())
        .await
        .unwrap();
    let marked = store
        .delete(Some("default"), "a", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let mut kept = store.get(Some("default"), "a").await.unwrap();
    assert!(kept["metadata"]["deletionTimestamp"].is_string());
    kept["metadata"]["finalizers"] = json!([]);
    store
        .update(Some("default"), "a", kept, Subresource::Main, &options())
        .await
        .unwrap();
    let gone = store.get(Some("default"), "a").await.unwrap_err();
    assert_eq!(gone.code(), 404);
}

#[tokio::test]
async fn a_paged_list_reads_every_page_at_the_first_pages_revision() {
    let (store, _) = store();
    for name in ["a", "b", "c", "d", "e"] {
        create(&store, name).await;
    }
    let first = store
        .list(
            Some("default"),
            &ListQuery {
                limit: Some(2),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.resource_version, "5");
    assert_eq!(first.remaining, Some(3));
    // A create between pages is not in the list that started before it.
    create(&store, "f").await;
    let mut names = Vec::new();
    let mut page = first;
    loop {
        names.extend(
            page.items
                .iter()
                .map(|item| item["metadata"]["name"].as_str().unwrap().to_string()),
        );
        let Some(token) = page.continue_token.clone() else {
            break;
        };
        page = store
            .list(
                Some("default"),
                &ListQuery {
                    limit: Some(2),
                    continue_token: Some(token),
                    ..ListQuery::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.resource_version, "5");
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
}

#[tokio::test]
async fn a_watch_from_a_revision_sees_the_changes_since_and_a_compacted_one_is_gone() {
    let (store, storage) = store();
    let a = create(&store, "a").await;
    create(&store, "b").await;
    store
        .delete(Some("default"), "b", &DeleteOptions::default())
        .await
        .unwrap();
    let from = |revision: String| ListQuery {
        resource_version: Some(revision),
        ..ListQuery::default()
    };
    let mut events = store.watch(Some("default"), &from(rv(&a))).await.unwrap();
    let added = events.next().await.unwrap();
    assert_eq!(
        (added.kind, rv(&added.object())),
        ("ADDED", "2".to_string())
    );
    let deleted = events.next().await.unwrap();
    assert_eq!(deleted.kind, "DELETED");
    assert_eq!(deleted.object()["metadata"]["name"], "b");
    storage.compact(3).unwrap();
    let error = match store.watch(Some("default"), &from(rv(&a))).await {
        Ok(_) => panic!("a watch from a compacted revision started"),
        Err(error) => error,
    };
    assert_eq!((error.code(), error.reason()), (410, "Gone"));
}
