//! Kubernetes' strategic merge patch.
//!
//! A JSON merge patch where some lists merge instead of being replaced (by a
//! merge key for lists of maps, as a set for lists of scalars), steered by
//! directives: `$patch` (`replace`, `delete`, `merge`) on maps and list
//! elements, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`
//! and `$retainKeys`. No directive is left in the result.
//!
//! Element order follows the apimachinery implementation (kubectl relies on
//! it): elements named by the patch come in the patch's order (or its
//! `$setElementOrder`), elements only the server has keep their place
//! relative to them as far as the live order allows.

use std::borrow::Borrow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::{PatchError, StrategicFailure};
use super::schema::{self, Field, ListStrategy, MergeKey, Schema};
use super::value::{json_equal, json_hash, Pointer};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

type Object = Map<String, Value>;

/// Whether [`apply_strategic_merge_patch`] knows the patch metadata of
/// `kind`: the core/v1 kinds the API serves (`Pod`, `Service`,
/// `ReplicationController`, `Node`, `Endpoints`, `Namespace`, `Event`) and
/// `Scale`.
#[must_use]
pub fn supports_strategic_merge_patch(kind: &str) -> bool {
    schema::for_kind(kind).is_some()
}

/// Applies a strategic merge patch to `target`, an object of kind `kind`
/// (`Pod`), and returns the patched object; `target` is not changed.
///
/// Maps merge key by key and `null` deletes a key, as in a JSON merge patch.
/// Lists tagged `patchStrategy: merge` in core/v1 merge: containers by
/// `name`, container ports by `containerPort`, service ports by `port`,
/// conditions by `type`, `metadata.finalizers` as a set, and so on (see the
/// `schema` module); every other list is replaced whole. Ports with the same
/// number are further told apart by `protocol` when the patch element sets
/// it, so a port open for both TCP and UDP can be patched (apimachinery
/// keys them on the number alone).
///
/// Directives:
/// - `"$patch": "replace"` in a map: the map becomes the patch's map;
///   `"delete"`: the map becomes empty; `"merge"`: the default.
/// - in a merging list, `{"$patch": "replace"}` replaces the list with the
///   patch's other elements; `{"name": "x", "$patch": "delete"}` deletes the
///   elements with that key; `"merge"` merges as usual.
/// - `"$setElementOrder/<list>": [...]`: the order of the patched list
///   (kubectl sends the whole configured order; elements only the server
///   has keep their place among them).
/// - `"$deleteFromPrimitiveList/<list>": [...]`: values removed from a list
///   of scalars.
/// - `"$retainKeys": [...]`: keys of the map not named are cleared (for
///   union fields such as a volume's source).
///
/// Nulls and directives inside values the target does not have yet are
/// dropped, not stored.
///
/// # Errors
///
/// [`PatchError::UnsupportedKind`] for a kind without patch metadata,
/// [`PatchError::NotAnObject`] when the target or the patch is not an
/// object, and [`PatchError::Strategic`] (with where in the patch) for an
/// unknown directive, a merge-list element without its merge key, a list out
/// of its `$setElementOrder`, a field missing from `$retainKeys`...
pub fn apply_strategic_merge_patch(
    kind: &str,
    target: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let schema =
        schema::for_kind(kind).ok_or_else(|| PatchError::UnsupportedKind(kind.to_owned()))?;
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject {
            what: "strategic merge patch",
        });
    };
    let Value::Object(original) = target else {
        return Err(PatchError::NotAnObject {
            what: "patch target",
        });
    };
    let mut at = Pointer::default();
    merge_map(original.clone(), patch, Some(schema), &mut at).map(Value::Object)
}

fn fail(at: &Pointer, failure: StrategicFailure) -> PatchError {
    PatchError::Strategic {
        path: at.render(),
        failure,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

/// The `$patch` directive of a map, if it has one.
fn directive(map: &Object, at: &mut Pointer) -> Result<Option<Directive>, PatchError> {
    let Some(value) = map.get(PATCH) else {
        return Ok(None);
    };
    match value.as_str() {
        Some("replace") => Ok(Some(Directive::Replace)),
        Some("delete") => Ok(Some(Directive::Delete)),
        Some("merge") => Ok(Some(Directive::Merge)),
        _ => {
            at.push(PATCH);
            Err(fail(
                at,
                StrategicFailure::UnknownPatchDirective(value.to_string()),
            ))
        }
    }
}

fn is_merging(field: Option<&Field>) -> bool {
    matches!(
        field.map(|f| &f.list),
        Some(ListStrategy::MergeSet | ListStrategy::MergeBy(_))
    )
}

fn take_object(value: &mut Value) -> Object {
    match value.take() {
        Value::Object(map) => map,
        _ => Object::new(),
    }
}

/// Merges `patch` into `original`, a map of struct `schema`.
fn merge_map(
    mut original: Object,
    patch: &Object,
    schema: Option<&'static Schema>,
    at: &mut Pointer,
) -> Result<Object, PatchError> {
    match directive(patch, at)? {
        Some(Directive::Delete) => return Ok(Object::new()),
        Some(Directive::Replace) => original.clear(),
        Some(Directive::Merge) | None => {}
    }
    if let Some(keys) = patch.get(RETAIN_KEYS) {
        retain_keys(&mut original, patch, keys, at)?;
    }

    // Ordered lists first: each is merged together with its patch list.
    let mut ordered: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(name) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        if name.is_empty() {
            at.push(key);
            return Err(fail(at, StrategicFailure::UnknownDirective(key.clone())));
        }
        let field = schema.and_then(|s| s.field(name));
        if set_element_order(&mut original, patch, name, order, field, at)? {
            ordered.push(name);
        }
    }

    let mut deletions = Vec::new();
    for (key, value) in patch {
        if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ELEMENT_ORDER) {
            continue;
        }
        if let Some(name) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            if name.is_empty() {
                at.push(key);
                return Err(fail(at, StrategicFailure::UnknownDirective(key.clone())));
            }
            deletions.push((key, name, value));
            continue;
        }
        if key.starts_with('$') {
            at.push(key);
            return Err(fail(at, StrategicFailure::UnknownDirective(key.clone())));
        }
        if ordered.contains(&key.as_str()) {
            continue;
        }
        at.push(key);
        merge_field(
            &mut original,
            key,
            value,
            schema.and_then(|s| s.field(key)),
            at,
        )?;
        at.pop();
    }

    // Deletions last, so that a value both added and deleted ends up gone.
    for (key, name, values) in deletions {
        let Value::Array(values) = values else {
            at.push(key);
            return Err(fail(at, StrategicFailure::ExpectedList(key.clone())));
        };
        if let Some(Value::Array(list)) = original.get_mut(name) {
            let doomed = Lookup::new(values, None);
            list.retain(|item| doomed.position(values, item).is_none());
        }
    }
    Ok(original)
}

/// Merges the patch's value of one field into `original`.
fn merge_field(
    original: &mut Object,
    key: &str,
    patch: &Value,
    field: Option<&'static Field>,
    at: &mut Pointer,
) -> Result<(), PatchError> {
    if patch.is_null() {
        original.shift_remove(key);
        return Ok(());
    }
    let schema = field.and_then(|f| f.schema);
    match (original.get_mut(key), patch, field) {
        (Some(slot @ Value::Object(_)), Value::Object(patch), _) => {
            let old = take_object(slot);
            *slot = Value::Object(merge_map(old, patch, schema, at)?);
        }
        (Some(slot @ Value::Array(_)), Value::Array(patch), Some(field))
            if is_merging(Some(field)) =>
        {
            let old = match slot.take() {
                Value::Array(items) => items,
                _ => Vec::new(),
            };
            *slot = Value::Array(merge_list(old, patch, field, at)?);
        }
        _ => match clean(patch, field, at)? {
            Some(value) => {
                original.insert(key.to_owned(), value);
            }
            None => {
                original.shift_remove(key);
            }
        },
    }
    Ok(())
}

/// The value a patch value gives a field the target does not have (or has
/// with another type): directives applied, nulls dropped. `None` when
/// nothing is to be stored (`null`, a map with `"$patch": "delete"`).
fn clean(
    value: &Value,
    field: Option<&'static Field>,
    at: &mut Pointer,
) -> Result<Option<Value>, PatchError> {
    let schema = field.and_then(|f| f.schema);
    match value {
        Value::Null => Ok(None),
        Value::Object(map) => clean_map(map, schema, at),
        Value::Array(items) => match field {
            Some(field) if is_merging(Some(field)) => {
                merge_list(Vec::new(), items, field, at).map(|l| Some(Value::Array(l)))
            }
            _ => clean_elements(items, schema, at).map(|l| Some(Value::Array(l))),
        },
        scalar => Ok(Some(scalar.clone())),
    }
}

fn clean_map(
    map: &Object,
    schema: Option<&'static Schema>,
    at: &mut Pointer,
) -> Result<Option<Value>, PatchError> {
    if directive(map, at)? == Some(Directive::Delete) {
        return Ok(None);
    }
    merge_map(Object::new(), map, schema, at).map(|m| Some(Value::Object(m)))
}

/// The elements of a list that replaces another: maps cleaned, elements
/// that only say `"$patch": "delete"` dropped, `null`s kept.
fn clean_elements(
    items: &[Value],
    schema: Option<&'static Schema>,
    at: &mut Pointer,
) -> Result<Vec<Value>, PatchError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        at.push(i.to_string());
        match item {
            Value::Object(map) => out.extend(clean_map(map, schema, at)?),
            Value::Array(inner) => out.push(Value::Array(clean_elements(inner, None, at)?)),
            other => out.push(other.clone()),
        }
        at.pop();
    }
    Ok(out)
}

/// Whether the elements of both lists are maps (`true`) or scalars.
fn elements_are_maps(
    original: &[Value],
    patch: &[Value],
    at: &Pointer,
) -> Result<bool, PatchError> {
    let mut maps = false;
    let mut scalars = false;
    for item in original.iter().chain(patch) {
        match item {
            Value::Array(_) => return Err(fail(at, StrategicFailure::ListOfLists)),
            Value::Object(_) => maps = true,
            _ => scalars = true,
        }
    }
    if maps && scalars {
        return Err(fail(at, StrategicFailure::MixedList));
    }
    Ok(maps)
}

/// Merges a patch list into a list whose field merges.
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    field: &'static Field,
    at: &mut Pointer,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = elements_are_maps(&original, patch, at)?;
    match (&field.list, maps) {
        (_, false) => Ok(merge_scalar_list(original, patch)),
        (ListStrategy::MergeBy(key), true) => {
            merge_map_list(original, patch, key, field.schema, at)
        }
        // Maps in a list tagged as a set of scalars: nothing to match them
        // by, so the patch's list wins.
        _ => clean_elements(patch, field.schema, at),
    }
}

/// A set union; patch values in the patch's order, the others where they were.
fn merge_scalar_list(original: Vec<Value>, patch: &[Value]) -> Vec<Value> {
    let server_order = original.clone();
    let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
    let mut seen = Lookup::new::<Value>(&[], None);
    for item in original.into_iter().chain(patch.iter().cloned()) {
        if seen.position(&merged, &item).is_none() {
            seen.insert(&item, merged.len());
            merged.push(item);
        }
    }
    let patch_order: Vec<&Value> = patch.iter().collect();
    let server_order: Vec<&Value> = server_order.iter().collect();
    arrange(merged, &patch_order, &server_order, None)
}

fn merge_map_list(
    mut list: Vec<Value>,
    patch: &[Value],
    key: &'static MergeKey,
    schema: Option<&'static Schema>,
    at: &mut Pointer,
) -> Result<Vec<Value>, PatchError> {
    // Directive elements first: deletions and replace.
    let mut items: Vec<(usize, &Object)> = Vec::with_capacity(patch.len());
    let mut deletions: Vec<&Value> = Vec::new();
    let mut replace = false;
    for (i, value) in patch.iter().enumerate() {
        let Value::Object(element) = value else {
            continue;
        };
        at.push(i.to_string());
        match directive(element, at)? {
            None => items.push((i, element)),
            Some(Directive::Delete) => {
                require_key(element, key, at)?;
                deletions.push(value);
            }
            Some(Directive::Replace) => replace = true,
            // A bare `{"$patch": "merge"}` only states the default.
            Some(Directive::Merge) => {
                if element.contains_key(key.field) {
                    items.push((i, element));
                }
            }
        }
        at.pop();
    }
    if replace {
        list.clear();
    } else if !deletions.is_empty() {
        let doomed = Lookup::new(&deletions, Some(key));
        list.retain(|e| doomed.position(&deletions, e).is_none());
    }

    let server_order: Vec<Value> = list.iter().map(|e| key_of(e, key)).collect();
    // The live elements by key, kept up to date as new ones are added (a
    // later patch element with the same key merges into an added one).
    let mut live = Lookup::new(&list, Some(key));
    for &(i, element) in &items {
        at.push(i.to_string());
        require_key(element, key, at)?;
        match live.named_by(&list, element) {
            Some(index) => {
                let slot = &mut list[index];
                let old = take_object(slot);
                *slot = Value::Object(merge_map(old, element, schema, at)?);
            }
            None => {
                if let Some(added) = clean_map(element, schema, at)? {
                    live.insert(&added, list.len());
                    list.push(added);
                }
            }
        }
        at.pop();
    }

    let patch_order: Vec<&Value> = items.iter().filter_map(|&(i, _)| patch.get(i)).collect();
    let server_order: Vec<&Value> = server_order.iter().collect();
    Ok(arrange(list, &patch_order, &server_order, Some(key)))
}

/// Where elements of a list are, found in constant time on average by the
/// hash of their merge key's value (of the whole value for scalars), and
/// confirmed by [`matches_key`] or [`json_equal`]. A scan per element made a
/// patch of a list of n elements cost n² comparisons (a 465 KB patch held a
/// worker for tens of seconds).
struct Lookup {
    key: Option<&'static MergeKey>,
    /// Hash → the indexes of the entries with it, ascending.
    buckets: HashMap<u64, Vec<usize>>,
}

impl Lookup {
    /// Indexes `entries` (list elements, patch elements or order entries)
    /// by `key`, or by value when `key` is `None`.
    fn new<V: Borrow<Value>>(entries: &[V], key: Option<&'static MergeKey>) -> Self {
        let mut lookup = Self {
            key,
            buckets: HashMap::with_capacity(entries.len()),
        };
        for (index, entry) in entries.iter().enumerate() {
            lookup.insert(entry.borrow(), index);
        }
        lookup
    }

    /// The hash an entry is filed under; `None` for a map without its
    /// merge key, which nothing matches.
    fn hash(&self, value: &Value) -> Option<u64> {
        match self.key {
            Some(key) => value.get(key.field).map(json_hash),
            None => Some(json_hash(value)),
        }
    }

    /// Files `entry` as `entries[index]`.
    fn insert(&mut self, entry: &Value, index: usize) {
        if let Some(hash) = self.hash(entry) {
            self.buckets.entry(hash).or_default().push(index);
        }
    }

    /// The first of `entries` (those indexed) that `accept` takes among
    /// those filed under `probe`'s hash.
    fn first<V: Borrow<Value>>(
        &self,
        entries: &[V],
        probe: &Value,
        accept: impl Fn(&Value) -> bool,
    ) -> Option<usize> {
        let candidates = self.buckets.get(&self.hash(probe)?)?;
        candidates
            .iter()
            .copied()
            .find(|&i| entries.get(i).is_some_and(|e| accept(e.borrow())))
    }

    /// The first entry naming `item` (the entry is the probe of
    /// [`matches_key`]: an order entry, a patch element), or equal to it.
    fn position<V: Borrow<Value>>(&self, entries: &[V], item: &Value) -> Option<usize> {
        self.first(entries, item, |entry| match self.key {
            Some(key) => entry
                .as_object()
                .is_some_and(|probe| matches_key(item, probe, key)),
            None => json_equal(entry, item),
        })
    }

    /// The first entry that the patch element `probe` names (the entry is
    /// the candidate of [`matches_key`]).
    fn named_by(&self, entries: &[Value], probe: &Object) -> Option<usize> {
        let key = self.key?;
        let field = probe.get(key.field)?;
        let candidates = self.buckets.get(&json_hash(field))?;
        candidates
            .iter()
            .copied()
            .find(|&i| entries.get(i).is_some_and(|e| matches_key(e, probe, key)))
    }
}

fn require_key(element: &Object, key: &MergeKey, at: &Pointer) -> Result<(), PatchError> {
    if element.get(key.field).is_some_and(|v| !v.is_null()) {
        Ok(())
    } else {
        Err(fail(
            at,
            StrategicFailure::MissingMergeKey { key: key.field },
        ))
    }
}

/// Whether list element `candidate` is the one `probe` (a patch element or
/// an order entry) names.
fn matches_key(candidate: &Value, probe: &Object, key: &MergeKey) -> bool {
    let Value::Object(candidate) = candidate else {
        return false;
    };
    let (Some(have), Some(want)) = (candidate.get(key.field), probe.get(key.field)) else {
        return false;
    };
    if !json_equal(have, want) {
        return false;
    }
    key.discriminators
        .iter()
        .all(|&(name, default)| match probe.get(name) {
            None | Some(Value::Null) => true,
            Some(want) => match candidate.get(name) {
                Some(have) => json_equal(have, want),
                None => want.as_str() == Some(default),
            },
        })
}

/// The fields of a list element that identify it.
fn key_of(element: &Value, key: &MergeKey) -> Value {
    let mut id = Object::new();
    if let Value::Object(element) = element {
        let names = std::iter::once(key.field).chain(key.discriminators.iter().map(|d| d.0));
        for name in names {
            if let Some(v) = element.get(name) {
                id.insert(name.to_owned(), v.clone());
            }
        }
    }
    Value::Object(id)
}

/// Orders a merged list: the elements `patch_order` names in its order, the
/// others (server-only) in `server_order`'s, interleaved the way
/// apimachinery does: a server-only element goes before a patch element
/// only when both are in `server_order` and it came first there.
fn arrange(
    merged: Vec<Value>,
    patch_order: &[&Value],
    server_order: &[&Value],
    key: Option<&'static MergeKey>,
) -> Vec<Value> {
    let in_patch = Lookup::new(patch_order, key);
    let on_server = Lookup::new(server_order, key);
    // (place in the patch or on the server, place on the server, element)
    let mut from_patch = Vec::new();
    let mut server_only = Vec::new();
    for item in merged {
        let server = on_server.position(server_order, &item);
        match in_patch.position(patch_order, &item) {
            Some(p) => from_patch.push((p, server, item)),
            None => server_only.push((server.unwrap_or(usize::MAX), server, item)),
        }
    }
    from_patch.sort_by_key(|(p, _, _)| *p);
    server_only.sort_by_key(|(p, _, _)| *p);

    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = from_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((_, l, _)), Some((_, r, _))) => {
                matches!((l, r), (Some(a), Some(b)) if a < b)
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(_, _, item)| item));
    }
    out
}

/// Applies `$setElementOrder/<name>`: merges the patch's list `name` (if
/// any) and puts the result in `order`. Returns false when `name` is not a
/// merging list, whose patch list is then handled as usual.
fn set_element_order(
    original: &mut Object,
    patch: &Object,
    name: &str,
    order: &Value,
    field: Option<&'static Field>,
    at: &mut Pointer,
) -> Result<bool, PatchError> {
    let Some(field) = field.filter(|f| is_merging(Some(f))) else {
        return Ok(false);
    };
    let directive_key = format!("{SET_ELEMENT_ORDER}{name}");
    let Value::Array(order) = order else {
        at.push(&directive_key);
        return Err(fail(at, StrategicFailure::ExpectedList(directive_key)));
    };
    let key = match &field.list {
        ListStrategy::MergeBy(key) => Some(key),
        _ => None,
    };
    if let Some(key) = key {
        for (i, entry) in order.iter().enumerate() {
            if !entry.as_object().is_some_and(|e| e.contains_key(key.field)) {
                at.push(&directive_key);
                at.push(i.to_string());
                return Err(fail(
                    at,
                    StrategicFailure::MissingMergeKey { key: key.field },
                ));
            }
        }
    }

    at.push(name);
    let patch_list = match patch.get(name) {
        None => None,
        Some(Value::Array(list)) => Some(list),
        Some(_) => return Err(fail(at, StrategicFailure::ExpectedList(name.to_owned()))),
    };
    if let Some(list) = patch_list {
        check_order(list, order, key, name, at)?;
    }
    let live = match original.get_mut(name) {
        Some(slot @ Value::Array(_)) => match slot.take() {
            Value::Array(items) => Some(items),
            _ => None,
        },
        _ => None,
    };
    let server_order: Vec<Value> = match (&live, key) {
        (Some(items), Some(key)) => items.iter().map(|e| key_of(e, key)).collect(),
        (Some(items), None) => items.clone(),
        (None, _) => Vec::new(),
    };
    let merged = match (live, patch_list) {
        (None, None) => {
            at.pop();
            return Ok(true);
        }
        (Some(items), None) => items,
        (None, Some(list)) => merge_list(Vec::new(), list, field, at)?,
        (Some(items), Some(list)) => merge_list(items, list, field, at)?,
    };
    at.pop();
    let order: Vec<&Value> = order.iter().collect();
    let server_order: Vec<&Value> = server_order.iter().collect();
    let arranged = arrange(merged, &order, &server_order, key);
    original.insert(name.to_owned(), Value::Array(arranged));
    Ok(true)
}

/// Checks that the patch list's elements appear in `order`, in its order
/// (directive elements aside).
fn check_order(
    list: &[Value],
    order: &[Value],
    key: Option<&MergeKey>,
    name: &str,
    at: &mut Pointer,
) -> Result<(), PatchError> {
    let mut entries = order.iter();
    for (i, item) in list.iter().enumerate() {
        if item.as_object().is_some_and(|m| m.contains_key(PATCH)) {
            continue;
        }
        if let (Some(key), Value::Object(element)) = (key, item) {
            at.push(i.to_string());
            require_key(element, key, at)?;
            at.pop();
        }
        let found = entries.any(|entry| match (key, entry) {
            (Some(key), Value::Object(entry)) => matches_key(item, entry, key),
            (Some(_), _) => false,
            (None, entry) => json_equal(item, entry),
        });
        if !found {
            return Err(fail(at, StrategicFailure::OrderMismatch(name.to_owned())));
        }
    }
    Ok(())
}

/// Applies `$retainKeys`: clears the keys of `original` it does not name,
/// after checking that the patch sets no key it does not name.
fn retain_keys(
    original: &mut Object,
    patch: &Object,
    keys: &Value,
    at: &mut Pointer,
) -> Result<(), PatchError> {
    let names: Option<Vec<&str>> = keys
        .as_array()
        .and_then(|keys| keys.iter().map(Value::as_str).collect());
    let Some(names) = names else {
        at.push(RETAIN_KEYS);
        return Err(fail(at, StrategicFailure::BadRetainKeys));
    };
    for (key, value) in patch {
        if value.is_null() || key.starts_with('$') || names.contains(&key.as_str()) {
            continue;
        }
        at.push(key);
        return Err(fail(
            at,
            StrategicFailure::NotInRetainKeys { field: key.clone() },
        ));
    }
    original.retain(|key, _| names.contains(&key.as_str()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn smp(kind: &str, target: &Value, patch: &Value) -> Value {
        match apply_strategic_merge_patch(kind, target, patch) {
            Ok(v) => v,
            Err(e) => panic!("patch failed: {e}"),
        }
    }

    /// [`smp`] of a Pod.
    fn pod_smp(target: &Value, patch: Value) -> Value {
        smp("Pod", target, &patch)
    }

    fn smp_err(kind: &str, target: &Value, patch: &Value) -> String {
        match apply_strategic_merge_patch(kind, target, patch) {
            Ok(v) => panic!("patch succeeded: {v}"),
            Err(e) => e.to_string(),
        }
    }

    fn pod_with(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    fn names(pod: &Value) -> Vec<&str> {
        pod["spec"]["containers"]
            .as_array()
            .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_keyed_list_of_5000_merges_in_linear_comparisons() {
        // kubectl's shape of a large patch: the list's whole order, half
        // of the elements changed, one deleted, one added; and a set of
        // 5,000 finalizers. A scan per element compared n² times.
        let n = 5000;
        let env: Vec<Value> = (0..n)
            .map(|i| json!({"name": format!("V{i}"), "value": "old"}))
            .collect();
        let mut pod = pod_with(json!([{"name": "c", "env": env}]));
        pod["metadata"]["finalizers"] = (0..n).map(|i| json!(format!("f{i}"))).collect();
        let mut changed: Vec<Value> = (0..n)
            .rev()
            .step_by(2)
            .map(|i| json!({"name": format!("V{i}"), "value": "new"}))
            .collect();
        changed.push(json!({"name": "V0", "$patch": "delete"}));
        changed.insert(0, json!({"name": "W", "value": "added"}));
        let order: Vec<Value> = std::iter::once("W".to_string())
            .chain((1..n).rev().map(|i| format!("V{i}")))
            .map(|name| json!({"name": name}))
            .collect();
        let finalizers: Vec<Value> = (0..n).rev().map(|i| json!(format!("f{i}"))).collect();
        let patch = json!({
            "metadata": {"finalizers": finalizers},
            "spec": {"containers": [{"name": "c", "env": changed, "$setElementOrder/env": order}]}
        });
        super::super::value::COMPARISONS.with(|c| c.set(0));
        let out = pod_smp(&pod, patch);
        let comparisons = super::super::value::COMPARISONS.with(std::cell::Cell::get);
        assert!(
            comparisons < 20 * n,
            "{comparisons} comparisons for lists of {n}"
        );
        let env = out["spec"]["containers"][0]["env"].as_array().expect("env");
        assert_eq!(env.len(), n);
        assert_eq!(env[0], json!({"name": "W", "value": "added"}));
        assert_eq!(env[1], json!({"name": "V4999", "value": "new"}));
        assert_eq!(env[2], json!({"name": "V4998", "value": "old"}));
        assert_eq!(env[n - 1], json!({"name": "V1", "value": "new"}));
        let finalizers = out["metadata"]["finalizers"].as_array().expect("set");
        assert_eq!(finalizers.len(), n);
        assert_eq!(finalizers[0], "f4999");
    }

    #[test]
    fn maps_merge_and_null_deletes() {
        let pod = json!({
            "metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}},
            "spec": {"nodeSelector": {"disk": "ssd"}}
        });
        let out = pod_smp(
            &pod,
            json!({"metadata": {"labels": {"tier": null, "env": "prod"}}, "spec": {"nodeSelector": null}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "p", "labels": {"app": "web", "env": "prod"}}, "spec": {}})
        );
    }

    #[test]
    fn merging_lists_merge_by_key_and_others_are_replaced() {
        let pod = pod_with(json!([
            {"name": "a", "image": "a:1", "args": ["x", "y"], "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [
                {"name": "a", "args": ["z"], "env": [{"name": "F", "value": "2"}]}
            ]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([
                {"name": "a", "image": "a:1", "args": ["z"], "env": [{"name": "F", "value": "2"}, {"name": "E", "value": "1"}]},
                {"name": "b", "image": "b:1"}
            ])
        );
        // tolerations have no merge key: replaced whole
        let pod = json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}});
        let out = pod_smp(&pod, json!({"spec": {"tolerations": [{"key": "c"}]}}));
        assert_eq!(out, json!({"spec": {"tolerations": [{"key": "c"}]}}));
    }

    #[test]
    fn new_elements_come_in_patch_order_before_server_only_ones() {
        // apimachinery's order: a patch element not in the live list goes
        // before the server-only elements.
        let pod = pod_with(json!([{"name": "a"}, {"name": "b"}]));
        let out = pod_smp(&pod, json!({"spec": {"containers": [{"name": "c"}]}}));
        assert_eq!(names(&out), ["c", "a", "b"]);
        // patch elements take the patch's order, server-only ones keep theirs
        let pod = pod_with(json!([{"name": "1"}, {"name": "2", "v": "b"}, {"name": "3"}]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"name": "3", "v": "c"}, {"name": "1", "v": "a"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "2", "v": "b"}, {"name": "3", "v": "c"}, {"name": "1", "v": "a"}])
        );
    }

    #[test]
    fn patch_replace_on_a_map() {
        let pod = json!({"metadata": {"labels": {"a": "1", "b": "2"}}});
        let out = pod_smp(
            &pod,
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
        );
        assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}}));
    }

    #[test]
    fn patch_delete_on_a_map() {
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        let out = pod_smp(&pod, json!({"metadata": {"labels": {"$patch": "delete"}}}));
        assert_eq!(out, json!({"metadata": {"name": "p", "labels": {}}}));
        // on a map the target does not have, nothing is stored
        let out = pod_smp(
            &pod,
            json!({"metadata": {"annotations": {"$patch": "delete"}}}),
        );
        assert_eq!(out, pod);
    }

    #[test]
    fn patch_merge_on_a_map_is_the_default() {
        let pod = json!({"metadata": {"labels": {"a": "1"}}});
        let out = pod_smp(
            &pod,
            json!({"metadata": {"labels": {"$patch": "merge", "b": "2"}}}),
        );
        assert_eq!(out, json!({"metadata": {"labels": {"a": "1", "b": "2"}}}));
    }

    #[test]
    fn patch_replace_in_a_list() {
        let pod = pod_with(json!([{"name": "a", "image": "a"}, {"name": "b"}]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "c"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "c", "image": "c"}])
        );
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"$patch": "replace"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([]));
    }

    #[test]
    fn patch_delete_in_a_list() {
        let pod = pod_with(json!([{"name": "a"}, {"name": "b"}, {"name": "a", "dup": true}]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}, {"name": "zz", "$patch": "delete"}]}}),
        );
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"containers": [{"$patch": "delete"}]}})
            ),
            "strategic merge patch at /spec/containers/0: list element has no merge key \"name\""
        );
    }

    #[test]
    fn patch_merge_in_a_list() {
        let pod = pod_with(json!([{"name": "a", "image": "a:1"}]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"$patch": "merge"}, {"name": "a", "$patch": "merge", "image": "a:2"}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "a:2"}])
        );
    }

    #[test]
    fn set_element_order_orders_the_list_and_is_not_stored() {
        // apimachinery's "set elements order in a list with server-only items 3"
        let pod = pod_with(json!([
            {"name": "1", "other": "a"}, {"name": "2", "value": 2}, {"name": "7"},
            {"name": "9"}, {"name": "8"}, {"name": "3", "value": 3}, {"name": "4", "value": 4}
        ]));
        let out = pod_smp(
            &pod,
            json!({"spec": {"$setElementOrder/containers": [
                {"name": "2"}, {"name": "1"}, {"name": "4"}, {"name": "3"}
            ]}}),
        );
        assert_eq!(names(&out), ["2", "1", "7", "9", "8", "4", "3"]);
        assert_eq!(out["spec"].as_object().map(Map::len), Some(1));
    }

    #[test]
    fn set_element_order_with_a_patch_list_and_missing_entries() {
        // "$setElementOrder contains item that is not present in the list"
        let pod = pod_with(json!([{"name": "1"}, {"name": "3"}]));
        let out = pod_smp(
            &pod,
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                "containers": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]
            }}),
        );
        assert_eq!(
            out,
            pod_with(json!([{"name": "3", "value": 3}, {"name": "1", "value": 1}]))
        );
    }

    #[test]
    fn set_element_order_must_match_the_patch_list() {
        let pod = pod_with(json!([{"name": "1"}, {"name": "3"}, {"name": "2"}]));
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {
                    "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                    "containers": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]
                }})
            ),
            "strategic merge patch at /spec/containers: the list does not match the order in $setElementOrder/containers"
        );
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"$setElementOrder/containers": [{"image": "x"}]}})
            ),
            "strategic merge patch at /spec/$setElementOrder~1containers/0: list element has no merge key \"name\""
        );
        assert_eq!(
            smp_err("Pod", &pod, &json!({"spec": {"$setElementOrder/containers": "x"}})),
            "strategic merge patch at /spec/$setElementOrder~1containers: $setElementOrder/containers must be a list"
        );
    }

    #[test]
    fn set_element_order_of_a_primitive_list_with_deletions() {
        // "delete an item in a list of primitives and preserve order"
        let pod = json!({"metadata": {"finalizers": ["1", "2", "3"]}});
        let out = pod_smp(
            &pod,
            json!({"metadata": {
                "$setElementOrder/finalizers": ["2", "1"],
                "$deleteFromPrimitiveList/finalizers": ["3"]
            }}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["2", "1"]}}));
        // "add an item in a list of primitives and preserve order"
        let pod = json!({"metadata": {"finalizers": ["1", "4", "2"]}});
        let out = pod_smp(
            &pod,
            json!({"metadata": {"$setElementOrder/finalizers": ["3", "1", "2"], "finalizers": ["3"]}}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"finalizers": ["3", "1", "4", "2"]}})
        );
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let pod = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = pod_smp(&pod, json!({"metadata": {"finalizers": ["b", "c"]}}));
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b", "c"]}}));
        // a value the live list lacks goes before the server-only ones
        let out = pod_smp(&pod, json!({"metadata": {"finalizers": ["c"]}}));
        assert_eq!(out, json!({"metadata": {"finalizers": ["c", "a", "b"]}}));
        let out = pod_smp(&pod, json!({"metadata": {"finalizers": ["b", "b"]}}));
        assert_eq!(out, pod);
    }

    #[test]
    fn delete_from_primitive_list() {
        let pod = json!({"metadata": {"finalizers": ["a", "b", "c"]}, "spec": {"containers": [{"name": "x", "args": ["1", "2"]}]}});
        let out = pod_smp(
            &pod,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}),
        );
        assert_eq!(out["metadata"], json!({"finalizers": ["a", "c"]}));
        // works on replace lists too, and on absent lists adds nothing
        let out = pod_smp(
            &pod,
            json!({"spec": {"containers": [{"name": "x", "$deleteFromPrimitiveList/args": ["1"], "$deleteFromPrimitiveList/command": ["sh"]}]}}),
        );
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "x", "args": ["2"]}])
        );
        assert_eq!(
            smp_err("Pod", &pod, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "b"}})),
            "strategic merge patch at /metadata/$deleteFromPrimitiveList~1finalizers: $deleteFromPrimitiveList/finalizers must be a list"
        );
    }

    #[test]
    fn retain_keys_clears_the_other_union_members() {
        let pod = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}}
        ]}});
        let out = pod_smp(
            &pod,
            json!({"spec": {"volumes": [
                {"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/srv"}}
            ]}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"volumes": [
                {"name": "data", "hostPath": {"path": "/srv"}},
                {"name": "conf", "configMap": {"name": "c"}}
            ]}})
        );
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"volumes": [{"name": "data", "$retainKeys": ["name"], "hostPath": {"path": "/"}}]}})
            ),
            "strategic merge patch at /spec/volumes/0/hostPath: field \"hostPath\" is set but not listed in $retainKeys"
        );
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"volumes": [{"name": "data", "$retainKeys": "name"}]}})
            ),
            "strategic merge patch at /spec/volumes/0/$retainKeys: $retainKeys must be a list of field names"
        );
    }

    #[test]
    fn unknown_directives_are_errors() {
        let pod = pod_with(json!([{"name": "a"}]));
        assert_eq!(
            smp_err("Pod", &pod, &json!({"metadata": {"$patch": "frobnicate"}})),
            "strategic merge patch at /metadata/$patch: unknown $patch directive \"frobnicate\""
        );
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"containers": [{"name": "a", "$patch": 1}]}})
            ),
            "strategic merge patch at /spec/containers/0/$patch: unknown $patch directive 1"
        );
        assert_eq!(
            smp_err("Pod", &pod, &json!({"spec": {"$foo": 1}})),
            "strategic merge patch at /spec/$foo: unknown directive \"$foo\""
        );
        assert_eq!(
            smp_err("Pod", &pod, &json!({"spec": {"$setElementOrder/": []}})),
            "strategic merge patch at /spec/$setElementOrder~1: unknown directive \"$setElementOrder/\""
        );
    }

    #[test]
    fn malformed_lists_are_errors() {
        let pod = pod_with(json!([{"name": "a"}]));
        assert_eq!(
            smp_err(
                "Pod",
                &pod,
                &json!({"spec": {"containers": [{"image": "x"}]}})
            ),
            "strategic merge patch at /spec/containers/0: list element has no merge key \"name\""
        );
        assert_eq!(
            smp_err("Pod", &pod, &json!({"spec": {"containers": ["a"]}})),
            "strategic merge patch at /spec/containers: list elements must be all maps or all scalars"
        );
        assert_eq!(
            smp_err(
                "Pod",
                &json!({}),
                &json!({"metadata": {"finalizers": [["a"]]}})
            ),
            "strategic merge patch at /metadata/finalizers: lists of lists cannot be merged"
        );
    }

    #[test]
    fn kinds_and_documents_are_checked() {
        assert_eq!(
            smp_err("Deployment", &json!({}), &json!({})),
            "strategic merge patch is not supported for kind \"Deployment\""
        );
        assert_eq!(
            smp_err("Pod", &json!({}), &json!([])),
            "strategic merge patch must be a json object"
        );
        assert_eq!(
            smp_err("Pod", &json!(1), &json!({})),
            "patch target must be a json object"
        );
        assert!(supports_strategic_merge_patch("Endpoints"));
        assert!(!supports_strategic_merge_patch("pod"));
    }

    #[test]
    fn new_values_lose_their_nulls_and_directives() {
        let out = pod_smp(
            &json!({"metadata": {"name": "p"}}),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [
                    {"name": "a", "image": null, "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]},
                    {"name": "gone", "$patch": "delete"}
                ],
                "affinity": {"$patch": "replace", "nodeAffinity": {"x": null}}
            }}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}],
                "affinity": {"nodeAffinity": {}}
            }})
        );
    }

    #[test]
    fn values_of_another_type_are_replaced() {
        let out = pod_smp(
            &json!({"spec": {"containers": "oops", "nodeSelector": ["x"]}}),
            json!({"spec": {"containers": [{"name": "a"}], "nodeSelector": {"k": "v"}}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a"}], "nodeSelector": {"k": "v"}}})
        );
    }

    #[test]
    fn service_ports_merge_by_port_and_protocol() {
        let svc = json!({"spec": {"ports": [
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            {"name": "http", "port": 80, "targetPort": 8080}
        ]}});
        let patched = |ports: Value| smp("Service", &svc, &json!({"spec": {"ports": ports}}));
        let out = patched(json!([{"port": 53, "protocol": "TCP", "targetPort": 5353}]));
        assert_eq!(
            out["spec"]["ports"],
            json!([
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 5353},
                {"name": "http", "port": 80, "targetPort": 8080}
            ])
        );
        // an unset protocol is TCP
        let out = patched(json!([{"port": 80, "protocol": "TCP", "name": "web"}]));
        assert_eq!(
            out["spec"]["ports"][2],
            json!({"name": "web", "port": 80, "targetPort": 8080, "protocol": "TCP"})
        );
        // UDP on 80 is another port
        let out = smp(
            "Service",
            &svc,
            &json!({"spec": {"ports": [{"port": 80, "protocol": "UDP", "name": "quic"}]}}),
        );
        assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(4));
        // a delete without protocol removes the port whatever its protocol
        let out = smp(
            "Service",
            &svc,
            &json!({"spec": {"ports": [{"port": 53, "$patch": "delete"}]}}),
        );
        assert_eq!(
            out["spec"]["ports"],
            json!([{"name": "http", "port": 80, "targetPort": 8080}])
        );
    }

    #[test]
    fn node_status_conditions_and_addresses_merge_by_type() {
        let node = json!({"status": {
            "conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"},
                {"type": "MemoryPressure", "status": "False"}
            ],
            "addresses": [{"type": "InternalIP", "address": "10.245.1.2"}]
        }});
        let out = smp(
            "Node",
            &node,
            &json!({"status": {
                "conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": "t2"}],
                "addresses": [{"type": "Hostname", "address": "m1"}]
            }}),
        );
        assert_eq!(
            out,
            json!({"status": {
                "conditions": [
                    {"type": "Ready", "status": "False", "lastHeartbeatTime": "t2"},
                    {"type": "MemoryPressure", "status": "False"}
                ],
                "addresses": [
                    {"type": "Hostname", "address": "m1"},
                    {"type": "InternalIP", "address": "10.245.1.2"}
                ]
            }})
        );
    }

    #[test]
    fn owner_references_merge_by_uid() {
        let ep = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}, "subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]});
        let out = smp(
            "Endpoints",
            &ep,
            &json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}, "subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
        );
        assert_eq!(
            out,
            json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}, "subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]})
        );
    }

    #[test]
    fn replication_controller_template_containers_merge() {
        let rc = json!({"spec": {"replicas": 1, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"containerPort": 80}]}]}
        }}});
        let out = smp(
            "ReplicationController",
            &rc,
            &json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "image": "web:2", "ports": [{"containerPort": 443}]}
            ]}}}}),
        );
        assert_eq!(
            out,
            json!({"spec": {"replicas": 3, "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:2", "ports": [{"containerPort": 443}, {"containerPort": 80}]}]}
            }}})
        );
    }
}
