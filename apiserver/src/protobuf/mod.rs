//! Kubernetes' protobuf media type, `application/vnd.kubernetes.protobuf`.
//!
//! A body is the magic `k8s\0` followed by a `runtime.Unknown` message whose
//! `typeMeta` names the kind and whose `raw` holds the object's message.
//! Stock kubectl's typed commands (`create namespace`, `create service`,
//! drain's evictions) send their bodies this way and ask for answers in it.
//!
//! Nothing here knows a kind's fields: the messages come from Kubernetes'
//! own `generated.proto` files (`apiserver/proto/`, compiled by `build.rs`
//! into a descriptor set), read and written as `prost_reflect`
//! `DynamicMessage`s, and [`json`] walks between those and the v1 JSON that
//! the registry speaks.

pub mod json;

use std::sync::LazyLock;

use api_types::kinds;
use bytes::Bytes;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage, Value as PValue,
};
use serde_json::Value;

use crate::error::ApiError;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// The envelope message.
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// Kinds of `meta/v1` that every group version also serves (Kubernetes
/// registers them with each one through `AddToGroupVersion`).
const META_KINDS: [&str; 4] = ["Status", "DeleteOptions", "WatchEvent", "APIResourceList"];

/// The descriptors of every message we serve, compiled by `build.rs`.
static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(include_bytes!(concat!(env!("OUT_DIR"), "/kubernetes.fds")).as_slice())
        .map_err(|e| e.to_string())
});

/// Why a protobuf body could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtobufError {
    /// The body lacks the `k8s\0` prefix.
    #[error("the protobuf body does not start with the magic prefix k8s\\0")]
    NoMagic,
    /// The envelope itself does not decode.
    #[error("the protobuf body is not a valid runtime.Unknown envelope: {0}")]
    Envelope(prost::DecodeError),
    /// The envelope names no kind we have a message for.
    #[error("no kind {kind:?} is registered for version {api_version:?}")]
    UnknownKind {
        /// `typeMeta.apiVersion`.
        api_version: String,
        /// `typeMeta.kind`.
        kind: String,
    },
    /// A compressed or otherwise encoded `raw`.
    #[error("content encoding {0:?} of the protobuf body is not supported")]
    ContentEncoding(String),
    /// The object's message does not decode.
    #[error("the protobuf body of kind {kind} is not valid: {source}")]
    Message {
        /// The kind the envelope named.
        kind: String,
        /// What prost found wrong.
        source: prost::DecodeError,
    },
    /// A field whose value cannot be converted (path as in JSON).
    #[error("{path}: {message}")]
    Field {
        /// Where, e.g. `spec.ports[0].targetPort`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Objects nested deeper than [`json::MAX_DEPTH`].
    #[error("{0}: nested deeper than the limit of {max} levels", max = json::MAX_DEPTH)]
    TooDeep(String),
    /// The JSON to encode has no `kind` or `apiVersion`.
    #[error("the object to encode has no kind and apiVersion")]
    NoTypeMeta,
    /// The compiled descriptor set is unusable (a build defect).
    #[error("the protobuf descriptors are unusable: {0}")]
    Descriptors(String),
}

impl From<ProtobufError> for ApiError {
    fn from(error: ProtobufError) -> Self {
        match error {
            ProtobufError::Descriptors(_) => ApiError::internal(error.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

fn pool() -> Result<&'static DescriptorPool, ProtobufError> {
    POOL.as_ref()
        .map_err(|e| ProtobufError::Descriptors(e.clone()))
}

/// The message of a kind in an API version, for the kinds this server
/// speaks: core `v1`, the named groups of `kinds::ALL` (Kubernetes'
/// package for `{group}/{version}` is `k8s.io.api.{first label}.{version}`:
/// `coordination.k8s.io/v1` → `k8s.io.api.coordination.v1`), `policy/v1`
/// (and `v1beta1`, whose Eviction is the same message), `autoscaling/v1`
/// (Scale) and the `meta/v1` kinds.
pub fn message_for(api_version: &str, kind: &str) -> Result<MessageDescriptor, ProtobufError> {
    let served = kinds::named_groups()
        .into_iter()
        .find(|gv| api_version.split_once('/') == Some((gv.group, gv.version)));
    let package = match api_version {
        "v1" => Some("k8s.io.api.core.v1".to_string()),
        _ if served.is_some() => served.map(|gv| {
            let short = gv.group.split('.').next().unwrap_or(gv.group);
            format!("k8s.io.api.{short}.{}", gv.version)
        }),
        "policy/v1" | "policy/v1beta1" => Some("k8s.io.api.policy.v1".to_string()),
        "autoscaling/v1" => Some("k8s.io.api.autoscaling.v1".to_string()),
        "authorization.k8s.io/v1" => Some("k8s.io.api.authorization.v1".to_string()),
        "meta.k8s.io/v1" => None,
        _ => {
            return Err(ProtobufError::UnknownKind {
                api_version: api_version.into(),
                kind: kind.into(),
            })
        }
    };
    let pool = pool()?;
    // Only top-level kinds (an uppercase name without dots) are looked up,
    // so a body cannot name a nested or unrelated message.
    let plausible = kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric());
    let found = plausible
        .then(|| {
            package
                .as_ref()
                .and_then(|p| pool.get_message_by_name(&format!("{p}.{kind}")))
                .or_else(|| {
                    META_KINDS.contains(&kind).then(|| {
                        pool.get_message_by_name(&format!(
                            "k8s.io.apimachinery.pkg.apis.meta.v1.{kind}"
                        ))
                    })?
                })
        })
        .flatten();
    found.ok_or_else(|| ProtobufError::UnknownKind {
        api_version: api_version.into(),
        kind: kind.into(),
    })
}

/// Decodes a protobuf body into the object's v1 JSON, with `apiVersion`
/// and `kind` from the envelope.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_at(body, 0)
}

/// [`decode`] of a body nested `depth` levels deep (a watch event's object),
/// so that bodies inside bodies count towards [`json::MAX_DEPTH`].
fn decode_at(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let inner = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let pool = pool()?;
    let unknown_desc = pool
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ProtobufError::Descriptors(format!("{UNKNOWN} is missing")))?;
    let envelope = DynamicMessage::decode(unknown_desc, inner).map_err(ProtobufError::Envelope)?;
    let type_meta = field(&envelope, "typeMeta");
    let (api_version, kind) = match type_meta.as_message() {
        Some(meta) => (string_field(meta, "apiVersion"), string_field(meta, "kind")),
        None => (String::new(), String::new()),
    };
    let encoding = string_field(&envelope, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let descriptor = message_for(&api_version, &kind)?;
    let raw = match field(&envelope, "raw").as_bytes() {
        Some(raw) => raw.clone(),
        None => Bytes::new(),
    };
    let message =
        DynamicMessage::decode(descriptor, raw).map_err(|source| ProtobufError::Message {
            kind: kind.clone(),
            source,
        })?;
    let mut value = json::message_to_json_at(&message, depth)?;
    if let Some(map) = value.as_object_mut() {
        // Go's messages carry no TypeMeta of their own: the envelope does.
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    Ok(value)
}

/// Encodes an object's v1 JSON (with `apiVersion` and `kind`) as a
/// protobuf body.
pub fn encode(value: &Value) -> Result<Vec<u8>, ProtobufError> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(ProtobufError::NoTypeMeta);
    };
    let descriptor = message_for(api_version, kind)?;
    let message = json::json_to_message(&descriptor, value)?;
    let pool = pool()?;
    let unknown_desc = pool
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| ProtobufError::Descriptors(format!("{UNKNOWN} is missing")))?;
    let type_meta_desc = unknown_desc
        .get_field_by_name("typeMeta")
        .and_then(|f| f.kind().as_message().cloned())
        .ok_or_else(|| ProtobufError::Descriptors("Unknown.typeMeta is missing".into()))?;
    let mut type_meta = DynamicMessage::new(type_meta_desc);
    set_by_name(
        &mut type_meta,
        "apiVersion",
        PValue::String(api_version.into()),
    )?;
    set_by_name(&mut type_meta, "kind", PValue::String(kind.into()))?;
    let mut envelope = DynamicMessage::new(unknown_desc);
    set_by_name(&mut envelope, "typeMeta", PValue::Message(type_meta))?;
    set_by_name(
        &mut envelope,
        "raw",
        PValue::Bytes(Bytes::from(message.encode_to_vec())),
    )?;
    let mut out = Vec::with_capacity(MAGIC.len() + envelope.encoded_len());
    out.extend_from_slice(MAGIC);
    envelope
        .encode(&mut out)
        .map_err(|e| ProtobufError::Field {
            path: String::new(),
            message: e.to_string(),
        })?;
    Ok(out)
}

/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// One frame of a protobuf watch stream, as Kubernetes writes it: a 4-byte
/// big-endian length, then a `meta/v1` WatchEvent message (no magic, no
/// envelope: client-go reads frames with its raw serializer) whose
/// `object.raw` is the object as a whole protobuf body (magic and
/// envelope). `object` needs `apiVersion` and `kind`.
pub fn watch_frame(event_type: &str, object: &Value) -> Result<Vec<u8>, ProtobufError> {
    let embedded = encode(object)?;
    let descriptor = message_for("v1", "WatchEvent")?;
    let mut event = DynamicMessage::new(descriptor.clone());
    set_by_name(&mut event, "type", PValue::String(event_type.into()))?;
    let raw_desc = descriptor
        .get_field_by_name("object")
        .and_then(|f| f.kind().as_message().cloned())
        .ok_or_else(|| ProtobufError::Descriptors("WatchEvent.object is missing".into()))?;
    let mut raw = DynamicMessage::new(raw_desc);
    set_by_name(&mut raw, "raw", PValue::Bytes(Bytes::from(embedded)))?;
    set_by_name(&mut event, "object", PValue::Message(raw))?;
    let message = event.encode_to_vec();
    let length = u32::try_from(message.len()).map_err(|_| ProtobufError::Field {
        path: String::new(),
        message: "watch event larger than 4 GiB".into(),
    })?;
    let mut frame = Vec::with_capacity(4 + message.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&message);
    Ok(frame)
}

/// Whether the client's first choice in `Accept` is protobuf (kubectl's
/// typed clients send `application/vnd.kubernetes.protobuf,
/// application/json`). Tables (`;as=Table`) are never protobuf here.
pub fn wants_protobuf(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("");
    let mut parts = first.split(';').map(str::trim);
    parts
        .next()
        .is_some_and(|media| media.eq_ignore_ascii_case(MEDIA_TYPE))
        && !parts.any(|p| p.starts_with("as="))
}

/// Whether a `Content-Type` is protobuf.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

fn field<'a>(message: &'a DynamicMessage, name: &str) -> std::borrow::Cow<'a, PValue> {
    match message.descriptor().get_field_by_name(name) {
        Some(fd) => message.get_field(&fd),
        None => std::borrow::Cow::Owned(PValue::Bool(false)),
    }
}

fn string_field(message: &DynamicMessage, name: &str) -> String {
    field(message, name)
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn set_by_name(
    message: &mut DynamicMessage,
    name: &str,
    value: PValue,
) -> Result<(), ProtobufError> {
    let fd = message
        .descriptor()
        .get_field_by_name(name)
        .ok_or_else(|| ProtobufError::Descriptors(format!("field {name} is missing")))?;
    message.set_field(&fd, value);
    Ok(())
}

#[cfg(test)]
mod tests;
