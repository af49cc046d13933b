//! The one walker each way between a `DynamicMessage` of Kubernetes'
//! protos and the v1 JSON the registry speaks.
//!
//! Field names are the same in both (Kubernetes' proto field names are the
//! JSON names). Only the types whose JSON is not their message are special:
//! `meta/v1` Time, MicroTime and Duration, `resource.Quantity`,
//! `intstr.IntOrString`, `runtime.RawExtension`, `meta/v1` FieldsV1, and
//! `bytes` fields (base64 strings in JSON).
//!
//! One thing proto cannot say is whether a zero was meant. Go writes every
//! non-pointer field, set or not, so an empty string, a 0 or a false on the
//! wire is usually "unset" — which Go's JSON (`omitempty`) and defaulting
//! (`if x == ""`) also treat as unset. So zeros are dropped, except for the
//! fields in `KEEP_ZERO`, which are Go pointers (where 0 or false is a
//! choice, e.g. `gracePeriodSeconds: 0`) or required fields where 0 is a
//! normal value (`restartCount`, `exitCode`).

use base64::Engine as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage,
    Value as PValue,
};
use serde_json::{Map, Number, Value};

use super::{ProtobufError, MAGIC};

/// How deep objects may nest (Kubernetes' deepest served objects are
/// about 12 levels; prost itself stops at 100).
pub const MAX_DEPTH: usize = 64;

/// Scalar fields whose zero value is kept: `*int32`/`*int64`/`*bool` in
/// Kubernetes' Go types of core/v1, coordination/v1, policy/v1,
/// autoscaling/v1 and meta/v1 (listed by `grep '\*\(int\|bool\)'
/// types.go`), plus required non-pointer ones where 0 is common.
const KEEP_ZERO: &[&str] = &[
    "activeDeadlineSeconds",
    "allocateLoadBalancerNodePorts",
    "allowPrivilegeEscalation",
    "automountServiceAccountToken",
    "blockOwnerDeletion",
    "controller",
    "currentCPUUtilizationPercentage",
    "defaultMode",
    "deletionGracePeriodSeconds",
    "enableServiceLinks",
    "exitCode",
    "expirationSeconds",
    "fsGroup",
    "gracePeriodSeconds",
    "hostUsers",
    "immutable",
    "leaseDurationSeconds",
    "leaseTransitions",
    "minReplicas",
    "mode",
    "observedGeneration",
    "optional",
    "orphanDependents",
    "priority",
    "privileged",
    "ready",
    "readOnlyRootFilesystem",
    "remainingItemCount",
    "replicas",
    "restartCount",
    "runAsGroup",
    "runAsNonRoot",
    "runAsUser",
    "setHostnameAsFQDN",
    "shareProcessNamespace",
    "started",
    "targetCPUUtilizationPercentage",
    "terminationGracePeriodSeconds",
    "tolerationSeconds",
];

/// Fields that Go embeds with `json:",inline"`: their message's fields
/// sit in the parent's JSON object (`grep 'json:",inline"' types.go`,
/// TypeMeta aside, which proto leaves out).
const INLINE: &[&str] = &[
    "ephemeralContainerCommon",
    "handler",
    "ingressRuleValue",
    "localObjectReference",
    "persistentVolumeSource",
    "volumeSource",
];

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";

fn field_error(path: &str, message: impl Into<String>) -> ProtobufError {
    ProtobufError::Field {
        path: if path.is_empty() {
            "<object>".into()
        } else {
            path.into()
        },
        message: message.into(),
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// The JSON of a message (a kind's object, without `apiVersion`/`kind`).
pub fn message_to_json(message: &DynamicMessage) -> Result<Value, ProtobufError> {
    message_to_json_at(message, 0)
}

/// [`message_to_json`] of a message already `depth` levels deep.
pub(super) fn message_to_json_at(
    message: &DynamicMessage,
    depth: usize,
) -> Result<Value, ProtobufError> {
    to_json(message, "", depth)?.ok_or_else(|| field_error("", "the object is empty"))
}

/// `None` when the message stands for an unset value (a zero Time, a zero
/// IntOrString).
fn to_json(
    message: &DynamicMessage,
    path: &str,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep(path.into()));
    }
    let get = |name: &str| {
        message
            .descriptor()
            .get_field_by_name(name)
            .map(|fd| message.get_field(&fd).into_owned())
    };
    match message.descriptor().full_name() {
        TIME | MICRO_TIME => {
            let seconds = get("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
            let nanos = get("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
            if !message.has_field_by_name("seconds") && !message.has_field_by_name("nanos") {
                return Ok(None); // Go writes a zero Time as an empty message.
            }
            let micro = message.descriptor().full_name() == MICRO_TIME;
            return format_time(seconds, nanos, micro)
                .map(|t| Some(Value::String(t)))
                .map_err(|m| field_error(path, m));
        }
        DURATION => {
            let nanos = get("duration").and_then(|v| v.as_i64()).unwrap_or(0);
            return Ok(Some(Value::String(format_duration(nanos))));
        }
        QUANTITY => {
            let text = get("string").and_then(|v| v.as_str().map(str::to_string));
            return Ok(text.filter(|t| !t.is_empty()).map(Value::String));
        }
        INT_OR_STRING => {
            let kind = get("type").and_then(|v| v.as_i64()).unwrap_or(0);
            return match kind {
                0 => {
                    let n = get("intVal").and_then(|v| v.as_i32()).unwrap_or(0);
                    // The zero IntOrString is what Go writes for "unset".
                    Ok((n != 0).then(|| Value::from(n)))
                }
                1 => Ok(get("strVal")
                    .and_then(|v| v.as_str().map(str::to_string))
                    .map(Value::String)),
                other => Err(field_error(
                    path,
                    format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"),
                )),
            };
        }
        RAW_EXTENSION | FIELDS_V1 => {
            let name = if message.descriptor().full_name() == FIELDS_V1 {
                "Raw"
            } else {
                "raw"
            };
            let raw = get(name)
                .and_then(|v| v.as_bytes().cloned())
                .unwrap_or_default();
            if raw.is_empty() {
                return Ok(None);
            }
            // An embedded object is JSON, or itself a protobuf body (watch
            // events embed one).
            let value = if raw.starts_with(MAGIC) {
                super::decode_at(&raw, depth + 1)?
            } else {
                serde_json::from_slice(&raw)
                    .map_err(|e| field_error(path, format!("embedded object is not JSON: {e}")))?
            };
            return Ok(Some(value));
        }
        _ => {}
    }
    let mut map = Map::new();
    for (fd, value) in message.fields() {
        let name = fd.name();
        let here = child(path, name);
        let converted = if fd.is_map() {
            let PValue::Map(entries) = value else {
                return Err(field_error(&here, "expected a map"));
            };
            let value_kind = fd
                .kind()
                .as_message()
                .map(|entry| entry.map_entry_value_field().kind());
            let Some(value_kind) = value_kind else {
                return Err(field_error(&here, "map without an entry message"));
            };
            let mut object = Map::new();
            let mut keys: Vec<_> = entries.iter().collect();
            // Sorted, so that the same object always reads the same.
            keys.sort_by_key(|(k, _)| map_key_string(k));
            for (key, entry) in keys {
                let key = map_key_string(key);
                let item = scalar_or_message(&value_kind, entry, &format!("{here}[{key}]"), depth)?;
                object.insert(key, item.unwrap_or(Value::Null));
            }
            (!object.is_empty()).then_some(Value::Object(object))
        } else if fd.is_list() {
            let PValue::List(items) = value else {
                return Err(field_error(&here, "expected a list"));
            };
            let mut array = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let item = scalar_or_message(&fd.kind(), item, &format!("{here}[{i}]"), depth)?;
                array.push(item.unwrap_or(Value::Null));
            }
            (!array.is_empty()).then_some(Value::Array(array))
        } else {
            let item = scalar_or_message(&fd.kind(), value, &here, depth)?;
            item.filter(|v| !is_unset(&fd, v))
        };
        match converted {
            Some(Value::Object(inner)) if INLINE.contains(&name) => map.extend(inner),
            Some(converted) => {
                map.insert(name.to_string(), converted);
            }
            None => {}
        }
    }
    Ok(Some(Value::Object(map)))
}

/// Whether a singular field's value is Go's zero value standing for unset.
fn is_unset(fd: &FieldDescriptor, value: &Value) -> bool {
    let zero = match value {
        Value::String(s) => return s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    };
    zero && !KEEP_ZERO.contains(&fd.name())
}

fn map_key_string(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn scalar_or_message(
    kind: &Kind,
    value: &PValue,
    path: &str,
    depth: usize,
) -> Result<Option<Value>, ProtobufError> {
    Ok(Some(match value {
        PValue::Message(message) => return to_json(message, path, depth + 1),
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(f) => float(f64::from(*f), path)?,
        PValue::F64(f) => float(*f, path)?,
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::List(_) | PValue::Map(_) => {
            return Err(field_error(
                path,
                format!("unexpected nested collection for {kind:?}"),
            ))
        }
    }))
}

fn float(f: f64, path: &str) -> Result<Value, ProtobufError> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| field_error(path, format!("{f} has no JSON form")))
}

/// RFC 3339 in UTC, as Go's `metav1.Time` (seconds) and `MicroTime`
/// (microseconds) write it.
fn format_time(seconds: i64, nanos: i32, micro: bool) -> Result<String, String> {
    let at = jiff::Timestamp::new(seconds, if micro { nanos } else { 0 })
        .map_err(|e| format!("time out of range: {e}"))?;
    let base = at.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(if micro {
        format!("{base}.{:06}Z", at.subsec_nanosecond() / 1000)
    } else {
        format!("{base}Z")
    })
}

/// A Go duration string (`1h2m3.5s`) of a number of nanoseconds.
fn format_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let (s, frac) = (rest / 1_000_000_000, rest % 1_000_000_000);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let digits = format!("{frac:09}");
        out.push_str(&format!("{s}.{}s", digits.trim_end_matches('0')));
    }
    out
}

/// Nanoseconds of a Go duration string (units h, m, s, ms, us/µs, ns).
fn parse_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Some(0);
    }
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_end..];
    }
    if total > i64::MAX as f64 {
        return None;
    }
    // Whole nanoseconds; the cast saturates and the bound is checked above.
    #[allow(clippy::cast_possible_truncation)]
    let nanos = total.round() as i64;
    Some(if negative { -nanos } else { nanos })
}

/// The message of a descriptor from JSON (fields the message lacks, such
/// as `apiVersion` and `kind` at the top, are skipped: they travel in the
/// envelope, and proto has no place for anything else).
pub fn json_to_message(
    descriptor: &MessageDescriptor,
    value: &Value,
) -> Result<DynamicMessage, ProtobufError> {
    from_json(descriptor, value, "", 0)
}

fn from_json(
    descriptor: &MessageDescriptor,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<DynamicMessage, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep(path.into()));
    }
    let mut message = DynamicMessage::new(descriptor.clone());
    let set = |message: &mut DynamicMessage, name: &str, v: PValue| {
        if let Some(fd) = descriptor.get_field_by_name(name) {
            message.set_field(&fd, v);
        }
    };
    match descriptor.full_name() {
        TIME | MICRO_TIME => {
            let text = value
                .as_str()
                .ok_or_else(|| field_error(path, "a time must be an RFC 3339 string"))?;
            let at: jiff::Timestamp = text
                .parse()
                .map_err(|e| field_error(path, format!("{text:?} is not an RFC 3339 time: {e}")))?;
            set(&mut message, "seconds", PValue::I64(at.as_second()));
            if descriptor.full_name() == MICRO_TIME {
                set(&mut message, "nanos", PValue::I32(at.subsec_nanosecond()));
            }
            return Ok(message);
        }
        DURATION => {
            let nanos = value.as_str().and_then(parse_duration).ok_or_else(|| {
                field_error(path, format!("{value} is not a duration like \"1m30s\""))
            })?;
            set(&mut message, "duration", PValue::I64(nanos));
            return Ok(message);
        }
        QUANTITY => {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => {
                    return Err(field_error(
                        path,
                        format!("a quantity must be a string or number, not {other}"),
                    ))
                }
            };
            set(&mut message, "string", PValue::String(text));
            return Ok(message);
        }
        INT_OR_STRING => {
            match value {
                Value::String(s) => {
                    set(&mut message, "type", PValue::I64(1));
                    set(&mut message, "strVal", PValue::String(s.clone()));
                }
                Value::Number(n) => {
                    let n = n
                        .as_i64()
                        .and_then(|n| i32::try_from(n).ok())
                        .ok_or_else(|| field_error(path, format!("{n} is not a 32-bit integer")))?;
                    set(&mut message, "type", PValue::I64(0));
                    set(&mut message, "intVal", PValue::I32(n));
                }
                other => {
                    return Err(field_error(
                        path,
                        format!("must be an integer or a string, not {other}"),
                    ))
                }
            }
            return Ok(message);
        }
        RAW_EXTENSION | FIELDS_V1 => {
            let name = if descriptor.full_name() == FIELDS_V1 {
                "Raw"
            } else {
                "raw"
            };
            let raw = serde_json::to_vec(value).map_err(|e| field_error(path, e.to_string()))?;
            set(&mut message, name, PValue::Bytes(raw.into()));
            return Ok(message);
        }
        _ => {}
    }
    let Value::Object(object) = value else {
        let what = descriptor
            .full_name()
            .strip_prefix(META)
            .unwrap_or(descriptor.name());
        return Err(field_error(
            path,
            format!("{what} must be an object, not {value}"),
        ));
    };
    for fd in descriptor.fields() {
        if INLINE.contains(&fd.name()) {
            if let Some(inner) = fd.kind().as_message() {
                // The embedded message takes its own keys from this object.
                let inner = from_json(inner, value, path, depth + 1)?;
                if inner.fields().next().is_some() {
                    message.set_field(&fd, PValue::Message(inner));
                }
            }
        }
    }
    for (name, item) in object {
        if item.is_null() || INLINE.contains(&name.as_str()) {
            continue;
        }
        let Some(fd) = descriptor.get_field_by_name(name) else {
            continue;
        };
        let here = child(path, name);
        let converted = if fd.is_map() {
            let entry = fd
                .kind()
                .as_message()
                .cloned()
                .ok_or_else(|| field_error(&here, "map without an entry message"))?;
            let key_kind = entry.map_entry_key_field().kind();
            let value_kind = entry.map_entry_value_field().kind();
            let Value::Object(entries) = item else {
                return Err(field_error(&here, format!("must be an object, not {item}")));
            };
            let mut map = std::collections::HashMap::with_capacity(entries.len());
            for (key, entry_value) in entries {
                let key = match key_kind {
                    Kind::String => MapKey::String(key.clone()),
                    _ => return Err(field_error(&here, "only string map keys are supported")),
                };
                let entry_path = format!("{here}[{key:?}]");
                if entry_value.is_null() {
                    continue;
                }
                map.insert(
                    key,
                    value_from_json(&value_kind, entry_value, &entry_path, depth)?,
                );
            }
            PValue::Map(map)
        } else if fd.is_list() {
            let Value::Array(items) = item else {
                return Err(field_error(&here, format!("must be an array, not {item}")));
            };
            let mut list = Vec::with_capacity(items.len());
            for (i, entry) in items.iter().enumerate() {
                list.push(value_from_json(
                    &fd.kind(),
                    entry,
                    &format!("{here}[{i}]"),
                    depth,
                )?);
            }
            PValue::List(list)
        } else {
            value_from_json(&fd.kind(), item, &here, depth)?
        };
        message.set_field(&fd, converted);
    }
    Ok(message)
}

fn value_from_json(
    kind: &Kind,
    value: &Value,
    path: &str,
    depth: usize,
) -> Result<PValue, ProtobufError> {
    let int = |min: i64, max: i64| {
        value
            .as_i64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| field_error(path, format!("{value} is not an integer in {min}..={max}")))
    };
    let uint = |max: u64| {
        value
            .as_u64()
            .filter(|n| *n <= max)
            .ok_or_else(|| field_error(path, format!("{value} is not an integer in 0..={max}")))
    };
    Ok(match kind {
        Kind::Message(descriptor) => {
            PValue::Message(from_json(descriptor, value, path, depth + 1)?)
        }
        Kind::Bool => PValue::Bool(
            value
                .as_bool()
                .ok_or_else(|| field_error(path, format!("{value} is not a boolean")))?,
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => PValue::I32(
            int(i32::MIN.into(), i32::MAX.into())?
                .try_into()
                .unwrap_or_default(),
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int(i64::MIN, i64::MAX)?),
        Kind::Uint32 | Kind::Fixed32 => {
            PValue::U32(uint(u32::MAX.into())?.try_into().unwrap_or_default())
        }
        Kind::Uint64 | Kind::Fixed64 => PValue::U64(uint(u64::MAX)?),
        Kind::Double => PValue::F64(
            value
                .as_f64()
                .ok_or_else(|| field_error(path, format!("{value} is not a number")))?,
        ),
        Kind::Float => {
            let f = value
                .as_f64()
                .ok_or_else(|| field_error(path, format!("{value} is not a number")))?;
            // Narrowing to the field's own width is what the field asks.
            #[allow(clippy::cast_possible_truncation)]
            PValue::F32(f as f32)
        }
        Kind::String => PValue::String(
            value
                .as_str()
                .ok_or_else(|| field_error(path, format!("{value} is not a string")))?
                .to_string(),
        ),
        Kind::Bytes => {
            let text = value
                .as_str()
                .ok_or_else(|| field_error(path, format!("{value} is not a base64 string")))?;
            PValue::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| field_error(path, format!("not base64: {e}")))?
                    .into(),
            )
        }
        Kind::Enum(_) => PValue::EnumNumber(
            int(i32::MIN.into(), i32::MAX.into())?
                .try_into()
                .unwrap_or_default(),
        ),
    })
}
