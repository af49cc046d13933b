//! RFC 7386 JSON merge patch: applying one, and computing the two-way and
//! three-way patches `ctl apply` sends.

use serde_json::{Map, Value};

use super::value::json_equal;

/// Applies an RFC 7386 JSON merge patch to `target`.
///
/// Objects merge key by key, `null` deletes a key, anything else (lists
/// included) replaces the value. A patch that is not an object replaces the
/// whole target. Cannot fail: every JSON value is a merge patch. Key order
/// is kept; new keys go last.
pub fn apply_merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.shift_remove(key);
            } else {
                apply_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The RFC 7386 merge patch that turns `original` into `modified`.
///
/// Keys missing from `modified` are set to `null`, changed values are set,
/// objects recurse; lists are set whole when they differ. Identical
/// documents give `{}`. A `null` value in `modified` cannot be expressed (a
/// merge patch reads it as a deletion).
#[must_use]
pub fn create_merge_patch(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(original), Value::Object(modified)) => {
            Value::Object(diff_objects(original, modified))
        }
        _ => modified.clone(),
    }
}

fn diff_objects(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (key, new) in modified {
        match (original.get(key), new) {
            (Some(Value::Object(old)), Value::Object(new)) => {
                let sub = diff_objects(old, new);
                if !sub.is_empty() {
                    patch.insert(key.clone(), Value::Object(sub));
                }
            }
            (Some(old), new) if json_equal(old, new) => {}
            (_, new) => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    for key in original.keys() {
        if !modified.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    patch
}

/// The merge patch `ctl apply` sends: it makes `current` (the live object)
/// match `modified` (the new configuration) without losing what others set.
///
/// - a field in `last_applied` (the configuration applied before, from the
///   `kubectl.kubernetes.io/last-applied-configuration` annotation) but not
///   in `modified` is deleted (`null`);
/// - a field of `modified` that differs from `current` is set;
/// - a field only `current` has (defaults, status, what other clients set)
///   is kept.
///
/// With no `last_applied` nothing is deleted. Lists are replaced whole, as
/// in any merge patch. The result is `{}` when nothing is to change.
#[must_use]
pub fn create_three_way_merge_patch(
    last_applied: Option<&Value>,
    modified: &Value,
    current: &Value,
) -> Value {
    let mut patch = match create_merge_patch(current, modified) {
        Value::Object(changes) => Value::Object(without_nulls(changes)),
        replacement => return replacement,
    };
    if let Some(Value::Object(deletions)) =
        last_applied.map(|last| create_merge_patch(last, modified))
    {
        let mut deletions = Value::Object(only_nulls(deletions));
        apply_merge_patch(&mut deletions, &patch);
        patch = deletions;
    }
    patch
}

/// Keeps the additions and changes of a merge patch: drops its `null`s, and
/// the objects that were only made of `null`s.
fn without_nulls(patch: Map<String, Value>) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in patch {
        match value {
            Value::Null => {}
            Value::Object(sub) if !sub.is_empty() => {
                let sub = without_nulls(sub);
                if !sub.is_empty() {
                    kept.insert(key, Value::Object(sub));
                }
            }
            other => {
                kept.insert(key, other);
            }
        }
    }
    kept
}

/// Keeps the deletions of a merge patch: its `null`s and the objects leading
/// to them.
fn only_nulls(patch: Map<String, Value>) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in patch {
        match value {
            Value::Null => {
                kept.insert(key, Value::Null);
            }
            Value::Object(sub) => {
                let sub = only_nulls(sub);
                if !sub.is_empty() {
                    kept.insert(key, Value::Object(sub));
                }
            }
            _ => {}
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn merged(mut target: Value, patch: &Value) -> Value {
        apply_merge_patch(&mut target, patch);
        target
    }

    #[test]
    fn merge_patch_follows_the_rfc_7386_examples() {
        // The test cases of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merged(target.clone(), &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn merge_patch_keeps_key_order() {
        let out = merged(
            json!({"a": 1, "b": 2, "c": 3}),
            &json!({"a": null, "b": 20, "d": 4}),
        );
        let keys: Vec<&String> = out
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["b", "c", "d"]);
    }

    #[test]
    fn two_way_patch_sets_changes_and_nulls_removals() {
        let original = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"replicas": 1, "selector": {"app": "web"}}
        });
        let modified = json!({
            "metadata": {"name": "web", "labels": {"app": "web", "env": "prod"}},
            "spec": {"replicas": 3, "selector": {"app": "web"}}
        });
        let patch = create_merge_patch(&original, &modified);
        assert_eq!(
            patch,
            json!({
                "metadata": {"labels": {"env": "prod", "tier": null}},
                "spec": {"replicas": 3}
            })
        );
        assert_eq!(merged(original, &patch), modified);
    }

    #[test]
    fn two_way_patch_of_equal_documents_is_empty() {
        let doc = json!({"a": {"b": [1, 2]}, "c": 1});
        assert_eq!(create_merge_patch(&doc, &doc), json!({}));
        assert_eq!(
            create_merge_patch(&json!({"n": 1}), &json!({"n": 1.0})),
            json!({})
        );
    }

    #[test]
    fn two_way_patch_replaces_lists_and_non_objects_whole() {
        assert_eq!(
            create_merge_patch(&json!({"l": [1, 2]}), &json!({"l": [1]})),
            json!({"l": [1]})
        );
        assert_eq!(
            create_merge_patch(&json!({"a": 1}), &json!([1])),
            json!([1])
        );
        assert_eq!(
            create_merge_patch(&json!({"a": "x"}), &json!({"a": {"b": 1}})),
            json!({"a": {"b": 1}})
        );
        assert_eq!(
            create_merge_patch(&json!({"a": {}}), &json!({"a": {}})),
            json!({})
        );
        assert_eq!(
            create_merge_patch(&json!({}), &json!({"a": {}})),
            json!({"a": {}})
        );
    }

    fn rc(replicas: u32, labels: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"app": "web"}}
        })
    }

    #[test]
    fn three_way_patch_deletes_removed_fields_and_keeps_server_ones() {
        let last = rc(2, json!({"app": "web", "old": "x"}));
        let modified = rc(3, json!({"app": "web"}));
        let mut current = rc(2, json!({"app": "web", "old": "x", "team": "ops"}));
        current["metadata"]["resourceVersion"] = json!("42");
        current["status"] = json!({"replicas": 2});

        let patch = create_three_way_merge_patch(Some(&last), &modified, &current);
        assert_eq!(
            patch,
            json!({"metadata": {"labels": {"old": null}}, "spec": {"replicas": 3}})
        );
        let mut want = rc(3, json!({"app": "web", "team": "ops"}));
        want["metadata"]["resourceVersion"] = json!("42");
        want["status"] = json!({"replicas": 2});
        assert_eq!(merged(current, &patch), want);
    }

    #[test]
    fn three_way_patch_without_last_applied_deletes_nothing() {
        let modified = rc(3, json!({"app": "web"}));
        let current = rc(1, json!({"app": "web", "team": "ops"}));
        assert_eq!(
            create_three_way_merge_patch(None, &modified, &current),
            json!({"spec": {"replicas": 3}})
        );
    }

    #[test]
    fn three_way_patch_is_empty_when_nothing_changed() {
        let cfg = rc(3, json!({"app": "web"}));
        let mut current = cfg.clone();
        current["status"] = json!({"replicas": 3});
        assert_eq!(
            create_three_way_merge_patch(Some(&cfg), &cfg, &current),
            json!({})
        );
    }

    #[test]
    fn three_way_patch_restores_a_field_changed_on_the_server() {
        // Someone scaled the controller by hand: apply puts the configured
        // value back, and does not delete what it never configured.
        let cfg = rc(3, json!({"app": "web"}));
        let current = rc(5, json!({"app": "web"}));
        assert_eq!(
            create_three_way_merge_patch(Some(&cfg), &cfg, &current),
            json!({"spec": {"replicas": 3}})
        );
    }

    #[test]
    fn three_way_patch_replaces_lists_and_deletes_whole_subtrees() {
        let last = json!({"spec": {"ports": [{"port": 80}], "extra": {"a": 1}}});
        let modified = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        let current = json!({
            "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "extra": {"a": 1}, "clusterIP": "10.0.0.3"}
        });
        let patch = create_three_way_merge_patch(Some(&last), &modified, &current);
        assert_eq!(
            patch,
            json!({"spec": {"extra": null, "ports": [{"port": 80}, {"port": 443}]}})
        );
        assert_eq!(
            merged(current, &patch),
            json!({"spec": {"ports": [{"port": 80}, {"port": 443}], "clusterIP": "10.0.0.3"}})
        );
    }
}
