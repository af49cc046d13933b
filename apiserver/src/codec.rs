//! The `/api/v1beta1` translation: request bodies to v1, responses, lists
//! and errors to the 2014 shapes. The registry only ever sees v1.

use api_types::kinds::ResourceKind;
use api_types::status::{self, Reason};
use api_types::v1::Status;
use api_types::v1beta1::{self, List, Versioned};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{ApiError, Result};

/// What the codec needs of a v1beta1 type.
trait Wire: Versioned
where
    Self::V1: Serialize + DeserializeOwned,
{
}

impl<T: Versioned> Wire for T where T::V1: Serialize + DeserializeOwned {}

fn decode<T>(resource: &ResourceKind, body: Value) -> Result<Value>
where
    T: Wire,
    T::V1: Serialize + DeserializeOwned,
{
    if let Some(kind) = body.get("kind").and_then(Value::as_str) {
        if !kind.is_empty() && kind != T::KIND {
            return Err(ApiError::bad_request(format!(
                "the kind {kind:?} of the object does not match the endpoint, which serves {}",
                T::KIND
            )));
        }
    }
    if let Some(version) = body.get("apiVersion").and_then(Value::as_str) {
        if !version.is_empty() && version != "v1beta1" {
            return Err(ApiError::bad_request(format!(
                "the apiVersion {version:?} of the object does not match the endpoint, which serves v1beta1"
            )));
        }
    }
    let object: T = serde_path_to_error::deserialize(body).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in body is malformed: {}: {}",
            T::KIND,
            e.path(),
            e.inner()
        ))
    })?;
    let name = object.type_meta().id.clone();
    let v1 = object.into_v1().map_err(|e| {
        // The v1 Status names the v1beta1 path already; keep it as is.
        ApiError(Box::new(status::invalid(resource.kind, &name, &[e.into()])))
    })?;
    let mut value =
        serde_json::to_value(v1).map_err(|e| ApiError::internal(format!("cannot encode: {e}")))?;
    // v0.5 named objects created without an id by a fresh UUID.
    let unnamed = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let generated = value
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .is_some_and(|g| !g.is_empty());
    if unnamed && !generated {
        value["metadata"]["name"] = Value::String(uuid::Uuid::new_v4().to_string());
    }
    Ok(value)
}

fn encode<T>(resource: &ResourceKind, v1: &Value) -> Result<Value>
where
    T: Wire,
    T::V1: Serialize + DeserializeOwned,
{
    let object: T::V1 = serde_json::from_value(v1.clone())
        .map_err(|e| ApiError::internal(format!("stored object is corrupt: {e}")))?;
    let mut old = T::from_v1(&object);
    // v0.5 linked every object it answered with (get, create, update and
    // watch events alike) by its id, whatever the request's path.
    let name = old.type_meta().id.clone();
    old.type_meta_mut().self_link = v1beta1::self_link(resource, &name);
    serde_json::to_value(old).map_err(|e| ApiError::internal(format!("cannot encode: {e}")))
}

fn encode_list<T>(resource: &ResourceKind, items: &[Value], resource_version: &str) -> Result<Value>
where
    T: Wire,
    T::V1: Serialize + DeserializeOwned,
{
    let objects = items
        .iter()
        .map(|v| {
            serde_json::from_value::<T::V1>(v.clone())
                .map_err(|e| ApiError::internal(format!("stored object is corrupt: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let link = v1beta1::self_link(resource, "");
    let list = List::<T>::from_v1(&objects, Some(resource_version), &link);
    serde_json::to_value(list).map_err(|e| ApiError::internal(format!("cannot encode: {e}")))
}

fn unsupported(resource: &ResourceKind) -> ApiError {
    ApiError::new(
        Reason::NotFound,
        format!(
            "the server could not find the requested resource ({} in v1beta1)",
            resource.plural
        ),
    )
}

/// Dispatches on the resource to the v1beta1 type that carries it.
macro_rules! by_kind {
    ($resource:expr, $f:ident ( $($arg:expr),* )) => {
        match $resource.kind {
            "Pod" => $f::<v1beta1::Pod>($($arg),*),
            "Service" => $f::<v1beta1::Service>($($arg),*),
            "ReplicationController" => $f::<v1beta1::ReplicationController>($($arg),*),
            "Node" => $f::<v1beta1::Minion>($($arg),*),
            "Endpoints" => $f::<v1beta1::Endpoints>($($arg),*),
            "Event" => $f::<v1beta1::Event>($($arg),*),
            _ => Err(unsupported($resource)),
        }
    };
}

/// A v1beta1 request body as v1 JSON. A malformed body is a 400; one that
/// cannot be expressed in v1 a 422 naming the v1beta1 field.
pub fn object_from_v1beta1(resource: &ResourceKind, body: Value) -> Result<Value> {
    by_kind!(resource, decode(resource, body))
}

/// A v1 object in its v1beta1 shape (with `selfLink`).
pub fn object_to_v1beta1(resource: &ResourceKind, v1: &Value) -> Result<Value> {
    by_kind!(resource, encode(resource, v1))
}

/// A list in its v1beta1 shape (`MinionList` carries `minions` too), with
/// `selfLink` on the list and on each item.
pub fn list_to_v1beta1(
    resource: &ResourceKind,
    items: &[Value],
    resource_version: &str,
) -> Result<Value> {
    by_kind!(resource, encode_list(resource, items, resource_version))
}

/// A v1 Status in the v1beta1 shape, with field paths in v1beta1 terms.
pub fn status_to_v1beta1(status: &Status, _resource: Option<&ResourceKind>) -> Value {
    serde_json::to_value(v1beta1::Status::from_v1(status)).unwrap_or(Value::Null)
}
