//! A v1 list written straight from the stored bytes of its objects.
//!
//! An unfiltered list from the watch cache needs nothing of its objects
//! but their resourceVersion, which etcd keeps as the key's revision
//! rather than in the value. Decoding each object into a JSON tree, adding
//! the field and encoding it again cost most of a large list's time (30,000
//! pods: 0.9 s, most of it allocating and freeing the trees); here each
//! object is only scanned to find where its `metadata` begins, and the
//! field is written there.

use std::sync::Arc;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::storage::Stored;

/// The top level of a stored object, as far as the splice needs it.
#[derive(Deserialize)]
struct Top<'a> {
    #[serde(borrow)]
    metadata: &'a RawValue,
}

/// What of `metadata` the splice needs: whether it already names a
/// resourceVersion (the stored form never should; if it does, the list
/// is left to the decoding path rather than answer two).
#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<IgnoredAny>,
}

/// The body of a v1 list of `items` read at `revision`: `None` if an
/// object is not the JSON object with a `metadata` object that the
/// apiserver stores (then the caller decodes, and reports what is wrong).
pub fn write(
    kind: &str,
    api_version: &str,
    revision: i64,
    items: &[Arc<Stored>],
) -> Option<Vec<u8>> {
    let size: usize = items.iter().map(|s| s.value.len() + 40).sum();
    let mut out = Vec::with_capacity(size + 128);
    out.extend_from_slice(b"{\"kind\":");
    push_json_string(&mut out, kind);
    out.extend_from_slice(b",\"apiVersion\":");
    push_json_string(&mut out, api_version);
    out.extend_from_slice(b",\"metadata\":{\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.extend_from_slice(b"\"},\"items\":[");
    for (index, stored) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        push_with_resource_version(&mut out, &stored.value, stored.mod_revision)?;
    }
    out.extend_from_slice(b"]}");
    Some(out)
}

/// `object` (stored bytes) with `"resourceVersion":"<revision>"` first in
/// its metadata: the object as a v1 JSON client gets it, without decoding
/// it into a tree. `None` as for [`write`].
pub fn with_resource_version(object: &[u8], revision: i64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(object.len() + 40);
    push_with_resource_version(&mut out, object, revision)?;
    Some(out)
}

/// Appends `object` with `"resourceVersion":"<revision>"` first in its
/// metadata.
fn push_with_resource_version(out: &mut Vec<u8>, object: &[u8], revision: i64) -> Option<()> {
    let top: Top<'_> = serde_json::from_slice(object).ok()?;
    let metadata = top.metadata.get();
    let parsed: Metadata = serde_json::from_str(metadata).ok()?;
    if parsed.resource_version.is_some() || !metadata.starts_with('{') {
        return None;
    }
    // RawValue borrows from `object`, so its address gives the offset of
    // metadata's opening brace.
    let open = (metadata.as_ptr() as usize).checked_sub(object.as_ptr() as usize)?;
    let (before, after) = object.split_at_checked(open + 1)?;
    out.extend_from_slice(before);
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    let empty = metadata[1..].trim_start().starts_with('}');
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(after);
    Some(())
}

fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // A kind or apiVersion: serde_json escapes whatever needs it.
    out.extend_from_slice(serde_json::to_string(text).unwrap_or_default().as_bytes());
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn stored(key: &str, value: &Value, revision: i64) -> Arc<Stored> {
        Arc::new(Stored {
            key: key.into(),
            value: serde_json::to_vec(value).unwrap(),
            mod_revision: revision,
            create_revision: revision,
        })
    }

    #[test]
    fn the_list_is_what_decoding_each_object_would_give() {
        let a = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "a", "labels": {"x": "}{\"metadata\":{"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b = json!({"metadata": {}, "kind": "Pod"});
        let items = [
            stored("/registry/pods/default/a", &a, 7),
            stored("/registry/pods/default/b", &b, 9),
        ];
        let body = write("PodList", "v1", 12, &items).unwrap();
        let list: Value = serde_json::from_slice(&body).unwrap();
        let mut want_a = a.clone();
        want_a["metadata"]["resourceVersion"] = json!("7");
        let mut want_b = b.clone();
        want_b["metadata"]["resourceVersion"] = json!("9");
        assert_eq!(
            list,
            json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "12"}, "items": [want_a, want_b]})
        );
    }

    #[test]
    fn an_empty_list_has_an_empty_items_array() {
        let body = write("PodList", "v1", 3, &[]).unwrap();
        let list: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list["items"], json!([]));
    }

    #[test]
    fn objects_it_cannot_splice_are_left_to_the_decoding_path() {
        let with_rv = json!({"metadata": {"name": "a", "resourceVersion": "1"}});
        let without_metadata = json!({"kind": "Pod"});
        let metadata_not_an_object = json!({"metadata": "x"});
        for value in [with_rv, without_metadata, metadata_not_an_object] {
            let items = [stored("/k", &value, 2)];
            assert!(write("PodList", "v1", 2, &items).is_none(), "{value}");
        }
        let corrupt = Arc::new(Stored {
            key: "/k".into(),
            value: b"{\"metadata\":{".to_vec(),
            mod_revision: 1,
            create_revision: 1,
        });
        assert!(write("PodList", "v1", 2, &[corrupt]).is_none());
    }
}
