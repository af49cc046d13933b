//! v1beta1 lists (`PodList`, `MinionList`...) and watch events.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};

use super::meta::TypeMeta;
use super::types::{Endpoints, Event, Minion, Pod, ReplicationController, Service, Status};
use super::{Versioned, API_VERSION};
use crate::v1;

/// A list of v1beta1 objects: inline metadata (`kind` = `<Kind>List`,
/// `selfLink`, `resourceVersion` as a number, `creationTimestamp: null`)
/// and `items` (always emitted). Items carry no `kind`/`apiVersion`.
///
/// A `MinionList` also carries the deprecated `minions` key (same content,
/// left out when empty); input accepts `items` or `minions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct List<T> {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The same items under the deprecated key (minion lists only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minions: Option<Vec<T>>,
    /// The items.
    pub items: Vec<T>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct RawList<T> {
    #[serde(flatten)]
    type_meta: TypeMeta,
    #[serde(default)]
    minions: Option<Vec<T>>,
    #[serde(default)]
    items: Option<Vec<T>>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawList::<T>::deserialize(deserializer)?;
        let items = match (raw.items, raw.minions) {
            (Some(items), _) if !items.is_empty() => items,
            (_, Some(minions)) => minions,
            (items, None) => items.unwrap_or_default(),
        };
        Ok(List {
            type_meta: raw.type_meta,
            minions: None,
            items,
        })
    }
}

impl<T: Versioned> List<T> {
    /// The v1beta1 list of `items` (converted with
    /// [`Versioned::from_v1`], their `kind`/`apiVersion` cleared),
    /// `resourceVersion` from the v1 list's (non-numeric: left out) and
    /// the given `selfLink` (see [`super::self_link`]). Each item's
    /// `selfLink` is the list's joined with its id, as v0.5 wrote them
    /// (none when the list has none).
    pub fn from_v1(items: &[T::V1], resource_version: Option<&str>, self_link: &str) -> Self {
        let items: Vec<T> = items
            .iter()
            .map(|item| {
                let mut item = T::from_v1(item);
                let tm = item.type_meta_mut();
                tm.kind.clear();
                tm.api_version.clear();
                tm.self_link = super::item_link(self_link, &tm.id);
                item
            })
            .collect();
        let type_meta = TypeMeta {
            kind: format!("{}List", T::KIND),
            self_link: self_link.to_string(),
            resource_version: resource_version
                .and_then(|rv| rv.parse::<u64>().ok())
                .filter(|rv| *rv != 0),
            api_version: API_VERSION.to_string(),
            ..TypeMeta::default()
        };
        let minions = (T::KIND == Minion::KIND && !items.is_empty()).then(|| items.clone());
        List {
            type_meta,
            minions,
            items,
        }
    }

    /// Every item converted to v1.
    ///
    /// # Errors
    ///
    /// The [`super::ConversionError`] of the first item that cannot be
    /// converted, its path prefixed with `items[i]`.
    pub fn into_v1(self) -> super::Result<Vec<T::V1>> {
        self.items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                item.into_v1().map_err(|mut e| {
                    e.field = format!("items[{i}].{}", e.field);
                    e
                })
            })
            .collect()
    }
}

/// `PodList`.
pub type PodList = List<Pod>;
/// `ServiceList`.
pub type ServiceList = List<Service>;
/// `ReplicationControllerList`.
pub type ReplicationControllerList = List<ReplicationController>;
/// `MinionList` (emits both `minions` and `items`).
pub type MinionList = List<Minion>;
/// `EndpointsList`.
pub type EndpointsList = List<Endpoints>;
/// `EventList`.
pub type EventList = List<Event>;

/// The `type` of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    /// A new object (or, at the start of a watch, an existing one).
    Added,
    /// An object changed.
    Modified,
    /// An object was deleted; the event carries its last state.
    Deleted,
    /// The watch failed; the event carries a Status.
    Error,
}

/// What a watch event carries: the object, or a Status for `ERROR`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum WatchObject<T> {
    /// The object (with its `kind` and `apiVersion`).
    Object(T),
    /// The error of an `ERROR` event.
    Status(Box<Status>),
}

/// `{"type": "ADDED", "object": {...}}`: one line of
/// `/api/v1beta1/watch/...`. The object carries `kind` and `apiVersion`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchEvent<T> {
    /// What happened.
    #[serde(rename = "type")]
    pub type_: WatchEventType,
    /// The object, or the Status of an error.
    pub object: WatchObject<T>,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for WatchEvent<T> {
    /// Reads the object as `T`, or as a Status when the type is `ERROR`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            type_: WatchEventType,
            #[serde(default)]
            object: serde_json::Value,
        }
        let raw = Raw::deserialize(deserializer)?;
        let object = if raw.type_ == WatchEventType::Error {
            WatchObject::Status(Box::new(
                serde_json::from_value(raw.object).map_err(serde::de::Error::custom)?,
            ))
        } else {
            WatchObject::Object(
                serde_json::from_value(raw.object).map_err(serde::de::Error::custom)?,
            )
        };
        Ok(WatchEvent {
            type_: raw.type_,
            object,
        })
    }
}

impl<T: Versioned> WatchEvent<T> {
    /// An event about `object` (converted with [`Versioned::from_v1`]).
    pub fn object(type_: WatchEventType, object: &T::V1) -> Self {
        WatchEvent {
            type_,
            object: WatchObject::Object(T::from_v1(object)),
        }
    }

    /// An `ERROR` event carrying `status` in v1beta1 terms.
    pub fn error(status: &v1::Status) -> Self {
        WatchEvent {
            type_: WatchEventType::Error,
            object: WatchObject::Status(Box::new(Status::from_v1(status))),
        }
    }

    /// A v1 watch event in v1beta1 terms. `BOOKMARK` has no v1beta1
    /// counterpart and gives `None`; a non-Status error becomes a
    /// `Failure` Status whose message is the raw error object.
    pub fn from_v1(event: &v1::WatchEvent<T::V1>) -> Option<Self> {
        Some(match event {
            v1::WatchEvent::Added(o) => Self::object(WatchEventType::Added, o),
            v1::WatchEvent::Modified(o) => Self::object(WatchEventType::Modified, o),
            v1::WatchEvent::Deleted(o) => Self::object(WatchEventType::Deleted, o),
            v1::WatchEvent::ErrorStatus(s) => Self::error(s),
            v1::WatchEvent::ErrorOther(raw) => Self::error(&v1::Status {
                status: Some("Failure".into()),
                message: Some(raw.0.to_string()),
                ..v1::Status::default()
            }),
            v1::WatchEvent::Bookmark { .. } => return None,
        })
    }
}
