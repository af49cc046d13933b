//! Pods from `--manifest-dir`: each file (JSON or YAML) is a 2014 v1beta1
//! ContainerManifest or a v1 Pod. They run without the apiserver; the
//! kubelet reports each as a *mirror pod* (annotation
//! [`MIRROR_ANNOTATION`]) named `{name}-{node}`.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// Marks a mirror pod in the apiserver (value: the static pod's uid).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// Where a pod came from (`file` for static pods).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";

/// Errors reading one manifest (the file is skipped and logged).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Unreadable.
    #[error("reading {0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// Neither JSON nor YAML of a known shape.
    #[error("decoding {0}: {1}")]
    Decode(String, String),
}

/// A uid derived from the node and the manifest's content (stable across
/// restarts, new when the manifest changes), formatted like a UUID.
fn static_uid(node: &str, content: &[u8]) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in node.as_bytes().iter().chain(b"/").chain(content) {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let s = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// Decodes one manifest into a v1 Pod bound to `node`.
///
/// # Errors
///
/// When the text is not a Pod nor a ContainerManifest.
pub fn parse_manifest(node: &str, file: &str, content: &[u8]) -> Result<Pod, ManifestError> {
    let value: Value = api_types::yaml::from_slice(content)
        .map_err(|e| ManifestError::Decode(file.into(), e.to_string()))?;
    let mut pod: Pod = if value.get("kind").and_then(Value::as_str) == Some("Pod") {
        serde_json::from_value(value)
            .map_err(|e| ManifestError::Decode(file.into(), e.to_string()))?
    } else {
        let manifest: api_types::v1beta1::ContainerManifest = serde_json::from_value(value)
            .map_err(|e| ManifestError::Decode(file.into(), e.to_string()))?;
        api_types::v1beta1::manifest_to_pod(manifest)
            .map_err(|e| ManifestError::Decode(file.into(), e.to_string()))?
    };
    let base = pod
        .metadata
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "static".into())
        });
    let uid = static_uid(node, content);
    pod.metadata.name = Some(format!("{base}-{node}"));
    if pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.resource_version = Some(uid.clone());
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(MIRROR_ANNOTATION.into(), uid);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    api_types::defaults::default_pod(&mut pod);
    Ok(pod)
}

/// Every manifest in `dir` (files ending `.json`, `.yaml`, `.yml`, or
/// `.manifest`), sorted by file name; unreadable ones are logged and skipped.
pub fn read_dir(node: &str, dir: &Path) -> Vec<Pod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        tracing::warn!(dir = %dir.display(), "manifest dir unreadable");
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "json" | "yaml" | "yml" | "manifest"))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let file = path.display().to_string();
            let result = std::fs::read(&path)
                .map_err(|e| ManifestError::Io(file.clone(), e))
                .and_then(|content| parse_manifest(node, &file, &content));
            match result {
                Ok(pod) => Some(pod),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping static pod manifest");
                    None
                }
            }
        })
        .collect()
}

/// Whether `pod` (from the apiserver) is a mirror pod.
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// The mirror pod to create for a static pod: same spec and labels, bound to the node.
pub fn mirror_of(pod: &Pod) -> Pod {
    let mut mirror = pod.clone();
    mirror.metadata.uid = None;
    mirror.metadata.resource_version = None;
    mirror.status = None;
    mirror
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1beta1_manifest_becomes_a_static_pod_named_after_the_node() {
        let text = br#"{"version": "v1beta1", "id": "web", "containers": [{"name": "c", "image": "busybox"}]}"#;
        let pod = parse_manifest("n1", "/m/web.json", text).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert!(is_mirror(&pod));
        let again = parse_manifest("n1", "/m/web.json", text).unwrap();
        assert_eq!(pod.metadata.uid, again.metadata.uid);
        let other = parse_manifest("n2", "/m/web.json", text).unwrap();
        assert_ne!(pod.metadata.uid, other.metadata.uid);
    }

    #[test]
    fn a_v1_pod_in_yaml_is_read_too() {
        let text = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let pod = parse_manifest("n1", "/m/p.yaml", text).unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("p-n1"));
        assert_eq!(pod.spec.unwrap().containers[0].name, "c");
    }
}
