//! The projection of an object's data to files (items, modes, optional)
//! and the atomic writer on a temp dir.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Volume;
use serde_json::json;

use super::*;
use crate::objects::{Data, Fetched, PodObjects};

fn objects(kind: Kind, name: &str, data: &[(&str, &str)]) -> PodObjects {
    let data = Data(
        data.iter()
            .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
            .collect(),
    );
    let mut o = PodObjects::default();
    o.0.insert((kind, name.into()), Fetched::Found(Arc::new(data)));
    o
}

fn volume(v: serde_json::Value) -> Volume {
    serde_json::from_value(v).unwrap()
}

fn files(v: &Volume, o: &PodObjects) -> Result<Vec<(String, u32, String)>, String> {
    project(v, o)
        .unwrap()
        .map(|(_, files)| {
            files
                .into_iter()
                .map(|f| (f.path, f.mode, String::from_utf8(f.content).unwrap()))
                .collect()
        })
        .map_err(|e| e.to_string())
}

#[test]
fn every_key_is_a_file_with_the_default_mode() {
    let o = objects(Kind::ConfigMap, "cm", &[("a", "1"), ("b.conf", "x=y")]);
    let v = volume(json!({"name": "v", "configMap": {"name": "cm"}}));
    assert_eq!(
        files(&v, &o).unwrap(),
        vec![
            ("a".into(), 0o644, "1".into()),
            ("b.conf".into(), 0o644, "x=y".into())
        ]
    );
}

#[test]
fn items_pick_keys_to_paths_with_their_modes() {
    let o = objects(Kind::Secret, "s", &[("user", "u"), ("pass", "p")]);
    let v = volume(
        json!({"name": "v", "secret": {"secretName": "s", "defaultMode": 0o400,
        "items": [{"key": "pass", "path": "db/password", "mode": 0o600},
                  {"key": "user", "path": "username"}]}}),
    );
    assert_eq!(
        files(&v, &o).unwrap(),
        vec![
            ("db/password".into(), 0o600, "p".into()),
            ("username".into(), 0o400, "u".into())
        ]
    );
}

#[test]
fn missing_objects_and_keys_fail_unless_optional() {
    let none = PodObjects::default();
    let v = volume(json!({"name": "v", "configMap": {"name": "cm"}}));
    assert_eq!(files(&v, &none).unwrap_err(), "configmap \"cm\" not found");
    let v = volume(json!({"name": "v", "configMap": {"name": "cm", "optional": true}}));
    assert_eq!(files(&v, &none).unwrap(), vec![]);
    let o = objects(Kind::ConfigMap, "cm", &[("a", "1")]);
    let v = volume(json!({"name": "v", "configMap": {"name": "cm",
        "items": [{"key": "b", "path": "b"}]}}));
    assert_eq!(
        files(&v, &o).unwrap_err(),
        "configmap references non-existent config key: b"
    );
    let v = volume(
        json!({"name": "v", "configMap": {"name": "cm", "optional": true,
        "items": [{"key": "b", "path": "b"}, {"key": "a", "path": "a"}]}}),
    );
    assert_eq!(
        files(&v, &o).unwrap(),
        vec![("a".into(), 0o644, "1".into())]
    );
    let v = volume(json!({"name": "v", "secret": {"secretName": "s"}}));
    assert_eq!(files(&v, &none).unwrap_err(), "secret \"s\" not found");
}

#[test]
fn a_path_leaving_the_volume_is_refused() {
    let o = objects(Kind::ConfigMap, "cm", &[("a", "1")]);
    for path in ["../x", "/etc/x", "..data/x", "a/../../x"] {
        let v = volume(json!({"name": "v", "configMap": {"name": "cm",
            "items": [{"key": "a", "path": path}]}}));
        assert!(files(&v, &o).is_err(), "{path}");
    }
}

#[test]
fn other_volumes_are_not_projected() {
    let v = volume(json!({"name": "v", "emptyDir": {}}));
    assert!(project(&v, &PodObjects::default()).is_none());
}

#[test]
fn a_secrets_content_stays_out_of_debug_output() {
    let f = Projected {
        path: "p".into(),
        mode: 0o600,
        content: b"hunter2".to_vec(),
    };
    let data = Data([("k".to_string(), b"hunter2".to_vec())].into());
    let shown = format!("{f:?} {data:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

fn file(path: &str, mode: u32, content: &str) -> Projected {
    Projected {
        path: path.into(),
        mode,
        content: content.as_bytes().to_vec(),
    }
}

#[test]
fn the_writer_swaps_the_data_link_and_leaves_one_generation() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("v");
    assert!(write_atomic(&dir, &[file("a", 0o644, "1"), file("d/b", 0o600, "2")]).unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "1");
    assert_eq!(std::fs::read_to_string(dir.join("d/b")).unwrap(), "2");
    let mode = std::fs::metadata(dir.join("d/b"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_link(dir.join("a")).unwrap(),
        Path::new("..data/a")
    );
    let first = std::fs::read_link(dir.join("..data")).unwrap();
    // The same content: nothing written.
    assert!(!write_atomic(&dir, &[file("a", 0o644, "1"), file("d/b", 0o600, "2")]).unwrap());
    assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), first);
    // A changed value and a removed key: a new generation, the old one gone.
    assert!(write_atomic(&dir, &[file("a", 0o644, "3")]).unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("a")).unwrap(), "3");
    assert!(std::fs::symlink_metadata(dir.join("d")).is_err());
    assert!(!dir.join(first).exists());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}"); // a, ..data, ..<stamp>
                                             // A mode change alone is a change too.
    assert!(write_atomic(&dir, &[file("a", 0o400, "3")]).unwrap());
}
