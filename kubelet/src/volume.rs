//! ConfigMap and Secret volumes: the files a volume holds (a pure
//! projection of the object's data through `items`, `defaultMode`,
//! `optional`), and writing them as Kubernetes' AtomicWriter does, so a
//! container reading the volume never sees half an update.
//!
//! Layout of a volume directory (what the container sees at its mount
//! path): `..2026_12_06_05_53_00.123456789/` holds the files, `..data` is
//! a symlink to it, and each top-level name is a symlink into `..data`.
//! An update writes a new timestamped directory, swaps `..data` with one
//! `rename` (atomic), fixes the top-level links and removes the old one.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};

use crate::objects::{ConfigError, Kind, PodObjects};

/// Kubernetes' default file mode of a projected key (0644).
pub const DEFAULT_MODE: u32 = 0o644;

const DATA_LINK: &str = "..data";

/// One file of a volume. `Debug` leaves the content out (Secret data).
#[derive(Clone, PartialEq, Eq)]
pub struct Projected {
    /// Relative path in the volume.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Content.
    pub content: Vec<u8>,
}

impl std::fmt::Debug for Projected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({:o}, {} bytes)",
            self.path,
            self.mode,
            self.content.len()
        )
    }
}

/// The plugin directory Kubernetes uses for the kind.
fn plugin_dir(kind: Kind) -> &'static str {
    match kind {
        Kind::ConfigMap => "kubernetes.io~configmap",
        Kind::Secret => "kubernetes.io~secret",
    }
}

/// `{root}/pods/{uid}/volumes/kubernetes.io~{configmap,secret}/{volume}`.
pub fn volume_dir(root: &Path, uid: &str, kind: Kind, volume: &str) -> PathBuf {
    root.join("pods")
        .join(uid)
        .join("volumes")
        .join(plugin_dir(kind))
        .join(volume)
}

/// The kind of a ConfigMap or Secret volume; `None` for other volumes.
pub fn kind_of(volume: &Volume) -> Option<Kind> {
    if volume.config_map.is_some() {
        Some(Kind::ConfigMap)
    } else if volume.secret.is_some() {
        Some(Kind::Secret)
    } else {
        None
    }
}

fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o777)
}

fn valid_path(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..")
}

/// The files of ConfigMap or Secret volume `volume` (`None` for other
/// volumes), from the objects fetched for its pod: every key (or only
/// `items`, at their paths), each with its item's `mode` or `defaultMode`
/// (0644). A missing optional object is an empty volume; a missing
/// optional item is left out.
///
/// # Errors
///
/// A non-optional object or item key is missing, or an item's path leaves
/// the volume.
pub fn project(
    volume: &Volume,
    objects: &PodObjects,
) -> Option<Result<(Kind, Vec<Projected>), ConfigError>> {
    let (kind, name, items, default_mode, optional) = if let Some(cm) = &volume.config_map {
        (
            Kind::ConfigMap,
            cm.name.clone(),
            cm.items.as_deref(),
            cm.default_mode,
            cm.optional,
        )
    } else if let Some(s) = &volume.secret {
        (
            Kind::Secret,
            s.secret_name.clone().unwrap_or_default(),
            s.items.as_deref(),
            s.default_mode,
            s.optional,
        )
    } else {
        return None;
    };
    Some(project_data(
        &volume.name,
        kind,
        &name,
        items,
        mode_bits(default_mode, DEFAULT_MODE),
        optional == Some(true),
        objects,
    ))
}

fn project_data(
    volume: &str,
    kind: Kind,
    name: &str,
    items: Option<&[KeyToPath]>,
    default_mode: u32,
    optional: bool,
    objects: &PodObjects,
) -> Result<(Kind, Vec<Projected>), ConfigError> {
    let Some(data) = objects.data(kind, name, optional)? else {
        return Ok((kind, Vec::new()));
    };
    let mut files = Vec::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (key, content) in &data.0 {
                files.push(Projected {
                    path: key.clone(),
                    mode: default_mode,
                    content: content.clone(),
                });
            }
        }
        Some(items) => {
            for item in items {
                let Some(content) = data.0.get(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(ConfigError::MissingVolumeKey {
                        kind,
                        key: item.key.clone(),
                    });
                };
                files.push(Projected {
                    path: item.path.clone(),
                    mode: mode_bits(item.mode, default_mode),
                    content: content.clone(),
                });
            }
        }
    }
    if let Some(bad) = files.iter().find(|f| !valid_path(&f.path)) {
        return Err(ConfigError::BadPath {
            volume: volume.into(),
            path: bad.path.clone(),
        });
    }
    Ok((kind, files))
}

/// The ConfigMap and Secret volumes the container mounts.
pub fn mounted_by<'a>(
    pod: &'a Pod,
    container: &'a k8s_openapi::api::core::v1::Container,
) -> impl Iterator<Item = &'a Volume> + 'a {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(move |m| volumes.iter().find(|v| v.name == m.name))
        .filter(|v| kind_of(v).is_some())
}

/// What the volume at `dir` holds now (path → (mode, content)), read through `..data`.
fn current(dir: &Path) -> io::Result<BTreeMap<String, (u32, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    let data = dir.join(DATA_LINK);
    if std::fs::symlink_metadata(&data).is_err() {
        return Ok(out);
    }
    let mut stack = vec![(data, String::new())];
    while let Some((d, prefix)) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push((entry.path(), rel));
            } else {
                let mode = meta.permissions().mode() & 0o777;
                out.insert(rel, (mode, std::fs::read(entry.path())?));
            }
        }
    }
    Ok(out)
}

/// Makes `dir` hold exactly `files`, atomically: readers see the old set
/// or the new one. Returns whether anything changed (nothing is written
/// when the content and modes are the same).
///
/// # Errors
///
/// The directory cannot be read or written.
pub fn write_atomic(dir: &Path, files: &[Projected]) -> io::Result<bool> {
    std::fs::create_dir_all(dir)?;
    let want: BTreeMap<String, (u32, Vec<u8>)> = files
        .iter()
        .map(|f| (f.path.clone(), (f.mode, f.content.clone())))
        .collect();
    let have_link = std::fs::symlink_metadata(dir.join(DATA_LINK)).is_ok();
    if have_link && current(dir)? == want {
        return Ok(false);
    }
    let old = std::fs::read_link(dir.join(DATA_LINK)).ok();
    let stamp = jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f");
    let new_name = format!("..{stamp}");
    let new_dir = dir.join(&new_name);
    std::fs::create_dir(&new_dir)?;
    // The volume directory is world-readable, as Kubernetes'; the files
    // carry their own modes.
    std::fs::set_permissions(&new_dir, std::fs::Permissions::from_mode(0o755))?;
    for f in files {
        let path = new_dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &f.content)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&new_name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA_LINK))?;
    // The user-visible names: one link per top-level entry.
    let tops: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.split('/').next().map(str::to_string))
        .collect();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_LINK).join(top), &link)?;
        }
    }
    if let Some(old) = old.filter(|o| *o != Path::new(&new_name)) {
        let old = dir.join(old);
        if old.starts_with(dir) {
            std::fs::remove_dir_all(&old)?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
