//! `TypeMeta`, `IntOrString` and the serde helpers that give v1beta1 its Go
//! encoding (`null` for unset times and slices, numbers for resourceVersion).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The metadata every v1beta1 object carries inline, in the order v0.5
/// printed it.
///
/// Every key is left out when empty except `creationTimestamp`, which is
/// `null` when unset. `resourceVersion` is a JSON number on output; input
/// also takes a string of digits (what a v1 client would send).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeMeta {
    /// The object's kind (`Pod`); only set on top-level objects.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// The object's name (v1 `metadata.name`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    /// The server-assigned UUID.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
    /// When the object was created; `null` when unset (always emitted).
    #[serde(default, with = "nullable_time")]
    pub creation_timestamp: Option<Timestamp>,
    /// The URL of the object on `/api/v1beta1`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub self_link: String,
    /// The etcd revision of the object (or of a list read); never 0 on the
    /// wire (0 means unset).
    #[serde(
        default,
        with = "resource_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_version: Option<u64>,
    /// `v1beta1`; only set on top-level objects.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// The namespace (`default` when a namespaced object is read back).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
    /// Free-form annotations.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl TypeMeta {
    /// The metadata of a top-level object of `kind` in v1beta1.
    pub fn top_level(kind: &str) -> Self {
        Self {
            kind: kind.to_string(),
            api_version: super::API_VERSION.to_string(),
            ..Self::default()
        }
    }
}

/// v1beta1's `IntOrString`: a JSON integer or a JSON string.
///
/// Unlike k8s-openapi's (`i32`) this holds an `i64`, because minion
/// capacities (`"memory": 3221225472`) do not fit in 32 bits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A string (a named port, or a quantity).
    String(String),
}

impl Default for IntOrString {
    fn default() -> Self {
        Self::Int(0)
    }
}

impl IntOrString {
    /// Whether this is `0` or `""`, the unset value.
    pub fn is_zero(&self) -> bool {
        match self {
            Self::Int(i) => *i == 0,
            Self::String(s) => s.is_empty(),
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(i) => write!(f, "{i}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

/// An empty JSON object (`{}`), the members of `restartPolicy` and
/// `emptyDir`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Deserializes `null` as the type's default, as Go's decoder leaves a
/// zero value untouched on `null`.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Formats a timestamp the way Go's `time.RFC3339` does in UTC.
pub(crate) fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Go's zero `time.Time`, which v0.5 printed for unset container times.
pub(crate) const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Parses an RFC 3339 time; empty strings and Go's zero time are unset.
fn parse_time<E: de::Error>(s: &str) -> Result<Option<Timestamp>, E> {
    if s.is_empty() || s == GO_ZERO_TIME {
        return Ok(None);
    }
    s.parse::<Timestamp>()
        .map(Some)
        .map_err(|e| E::custom(format!("invalid time {s:?}: {e}")))
}

/// `util.Time`: RFC 3339 or `null` (always emitted).
pub(crate) mod nullable_time {
    use super::{format_time, parse_time, Deserialize, Deserializer, Serializer, Timestamp};

    #[allow(clippy::ref_option)] // serde's `with` hands us `&Option<_>`
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serializer.serialize_str(&format_time(*t)),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            Some(s) => parse_time(&s),
            None => Ok(None),
        }
    }
}

/// Go's plain `time.Time`: RFC 3339, and `0001-01-01T00:00:00Z` when unset
/// (always emitted). Input also takes `null`.
pub(crate) mod go_time {
    use super::{format_time, Deserializer, Serializer, Timestamp, GO_ZERO_TIME};

    #[allow(clippy::ref_option)] // serde's `with` hands us `&Option<_>`
    pub(crate) fn serialize<S: Serializer>(
        t: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serializer.serialize_str(&format_time(*t)),
            None => serializer.serialize_str(GO_ZERO_TIME),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        super::nullable_time::deserialize(deserializer)
    }
}

/// `resourceVersion`: written as a number, read from a number or a string
/// of digits; `0`, `""` and `null` mean unset.
pub(crate) mod resource_version {
    use super::{de, fmt, Deserializer, Serializer, Visitor};

    #[allow(clippy::ref_option)] // serde's `with` hands us `&Option<_>`
    pub(crate) fn serialize<S: Serializer>(
        rv: &Option<u64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match rv {
            Some(rv) => serializer.serialize_u64(*rv),
            None => serializer.serialize_none(),
        }
    }

    struct RvVisitor;

    impl<'de> Visitor<'de> for RvVisitor {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a resourceVersion (a non-negative integer or a string of digits)")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok((v != 0).then_some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            u64::try_from(v)
                .map(|v| (v != 0).then_some(v))
                .map_err(|_| E::custom(format!("resourceVersion {v} is negative")))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<u64>()
                .map(|v| (v != 0).then_some(v))
                .map_err(|_| E::custom(format!("resourceVersion {v:?} is not a number")))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(RvVisitor)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        deserializer.deserialize_any(RvVisitor)
    }
}

/// `true` when a bool is false, for `skip_serializing_if`.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// `true` when an integer is zero, for `skip_serializing_if`.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
pub(crate) fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// `true` when an integer is zero, for `skip_serializing_if`.
#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
pub(crate) fn is_zero_i32(v: &i32) -> bool {
    *v == 0
}
