//! The ConfigMaps and Secrets a pod refers to (env `valueFrom`, `envFrom`,
//! volumes): which ones, how they are fetched (the [`ObjectSource`] seam:
//! the apiserver behind a TTL cache, or a fixed map in tests), and their
//! data as the pod sync sees it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use tokio::time::Instant;

/// The two kinds a pod can read data from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A ConfigMap (`data` and `binaryData`).
    ConfigMap,
    /// A Secret (`data`).
    Secret,
}

impl Kind {
    /// The lowercase name Kubernetes' messages use (`configmap "x" not found`).
    pub fn noun(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }

    /// The kind as in messages naming the object (`ConfigMap`, `Secret`).
    pub fn title(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
        }
    }
}

/// An object's data, key to bytes. `Debug` shows the keys only: a Secret's
/// values must never reach a log.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Data(pub BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// What fetching one object gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// It exists, with this data.
    Found(Arc<Data>),
    /// The apiserver says it does not exist.
    NotFound,
    /// It could not be read (the message says why; retried next sync).
    Failed(String),
}

/// The objects one pod refers to, by kind and name (in the pod's namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodObjects(pub HashMap<(Kind, String), Fetched>);

/// Why an object's data cannot be used. The `Display` is the message of
/// the container's `CreateContainerConfigError` and of its `Failed` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The object does not exist and is not optional.
    #[error("{} {name:?} not found", kind.noun())]
    NotFound {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
    },
    /// The object exists without the key, and the reference is not optional.
    #[error("couldn't find key {key} in {} {namespace}/{name}", kind.title())]
    MissingKey {
        /// Its kind.
        kind: Kind,
        /// The pod's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The key.
        key: String,
    },
    /// A volume's `items` names a key the object lacks.
    #[error("{} references non-existent {} key: {key}", kind.noun(), if *kind == Kind::ConfigMap { "config" } else { "secret" })]
    MissingVolumeKey {
        /// Its kind.
        kind: Kind,
        /// The key.
        key: String,
    },
    /// An item's path is absolute or climbs out of the volume.
    #[error("invalid path {path:?} in volume {volume:?}")]
    BadPath {
        /// The volume.
        volume: String,
        /// The path.
        path: String,
    },
    /// The object could not be read.
    #[error("cannot read {} {name:?}: {message}", kind.noun())]
    Unreadable {
        /// Its kind.
        kind: Kind,
        /// Its name.
        name: String,
        /// Why.
        message: String,
    },
}

impl PodObjects {
    /// The data of `name`: `Ok(None)` when it is missing and `optional`.
    ///
    /// # Errors
    ///
    /// The object is missing (not optional), was not fetched, or could not be read.
    pub fn data(
        &self,
        kind: Kind,
        name: &str,
        optional: bool,
    ) -> Result<Option<&Data>, ConfigError> {
        match self.0.get(&(kind, name.to_string())) {
            Some(Fetched::Found(data)) => Ok(Some(data)),
            Some(Fetched::NotFound) | None if optional => Ok(None),
            Some(Fetched::NotFound) | None => Err(ConfigError::NotFound {
                kind,
                name: name.into(),
            }),
            Some(Fetched::Failed(message)) => Err(ConfigError::Unreadable {
                kind,
                name: name.into(),
                message: message.clone(),
            }),
        }
    }
}

/// Every ConfigMap and Secret the pod's containers and volumes refer to.
pub fn referenced(pod: &Pod) -> BTreeSet<(Kind, String)> {
    let mut out = BTreeSet::new();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        for var in c.env.iter().flatten() {
            let Some(from) = var.value_from.as_ref() else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                out.insert((Kind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &from.secret_key_ref {
                out.insert((Kind::Secret, r.name.clone()));
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                out.insert((Kind::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &from.secret_ref {
                out.insert((Kind::Secret, r.name.clone()));
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert((Kind::ConfigMap, cm.name.clone()));
        }
        if let Some(s) = &v.secret {
            if let Some(name) = &s.secret_name {
                out.insert((Kind::Secret, name.clone()));
            }
        }
    }
    out
}

/// Where a kubelet gets ConfigMaps and Secrets from.
#[async_trait]
pub trait ObjectSource: Send + Sync {
    /// The object `kind` `namespace/name` as it is now (or was at most a
    /// cache period ago).
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Fetched;
}

/// Fetches what `pod` refers to from `source`.
pub async fn fetch_for(source: &dyn ObjectSource, pod: &Pod) -> PodObjects {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = PodObjects::default();
    for (kind, name) in referenced(pod) {
        let fetched = source.get(kind, ns, &name).await;
        out.0.insert((kind, name), fetched);
    }
    out
}

fn config_map_data(cm: ConfigMap) -> Data {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.unwrap_or_default() {
        data.insert(k, v.0);
    }
    Data(data)
}

fn secret_data(s: Secret) -> Data {
    let mut data: BTreeMap<String, Vec<u8>> = s
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    // The apiserver folds stringData into data; a source that did not still works.
    for (k, v) in s.string_data.unwrap_or_default() {
        data.insert(k, v.into_bytes());
    }
    Data(data)
}

/// Cached answers by kind, namespace and name, with when they were read.
type Cache = HashMap<(Kind, String, String), (Instant, Fetched)>;

/// The apiserver behind a cache: an object read less than `ttl` ago is
/// not read again (Kubernetes' default `configMapAndSecretChangeDetectionStrategy`
/// is such a TTL cache). A missing object is cached too; a failed read is not.
pub struct ApiObjects {
    client: kube::Client,
    ttl: Duration,
    cache: Mutex<Cache>,
}

impl ApiObjects {
    /// A cache over `client` keeping each answer for `ttl`.
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the entries older than the TTL (their pods may be gone).
    fn expire(&self, now: Instant) {
        let ttl = self.ttl;
        self.lock().retain(|_, (at, _)| now < *at + ttl);
    }
}

#[async_trait]
impl ObjectSource for ApiObjects {
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Fetched {
        let key = (kind, namespace.to_string(), name.to_string());
        let now = Instant::now();
        if let Some((at, fetched)) = self.lock().get(&key) {
            if now < *at + self.ttl {
                return fetched.clone();
            }
        }
        self.expire(now);
        let result = match kind {
            Kind::ConfigMap => Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map(|o| o.map(config_map_data)),
            Kind::Secret => Api::<Secret>::namespaced(self.client.clone(), namespace)
                .get_opt(name)
                .await
                .map(|o| o.map(secret_data)),
        };
        let fetched = match result {
            Ok(Some(data)) => Fetched::Found(Arc::new(data)),
            Ok(None) => Fetched::NotFound,
            Err(e) => {
                tracing::warn!(kind = kind.noun(), %namespace, %name, error = %e, "reading an object a pod refers to");
                return Fetched::Failed(e.to_string());
            }
        };
        self.lock().insert(key, (now, fetched.clone()));
        fetched
    }
}

/// A fixed set of objects (tests, hollow kubelets): what is not in it is
/// not found.
#[derive(Default)]
pub struct StaticObjects {
    objects: Mutex<HashMap<(Kind, String, String), Arc<Data>>>,
}

impl StaticObjects {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `kind` `namespace/name` with `data` (string values).
    pub fn set(&self, kind: Kind, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let data = Data(
            data.iter()
                .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
                .collect(),
        );
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((kind, namespace.into(), name.into()), Arc::new(data));
    }
}

#[async_trait]
impl ObjectSource for StaticObjects {
    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Fetched {
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(kind, namespace.into(), name.into()))
            .map_or(Fetched::NotFound, |d| Fetched::Found(d.clone()))
    }
}
