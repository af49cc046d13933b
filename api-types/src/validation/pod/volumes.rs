//! Volumes and their mounts: one source per volume, each source's fields,
//! file modes and projected paths, and mounts that name a declared volume.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::KeyToPath;

use super::env::{validate_object_field_selector, validate_resource_field_selector};
use crate::status::FieldError;
use crate::v1::{Volume, VolumeMount};
use crate::validation::names::{inclusive_range_error, is_dns1123_label, name_is_dns_subdomain};
use crate::validation::quantity::{quantity_error, ParsedQuantity};
use crate::validation::{child, index, push_invalid, unset, FieldErrors};

const MOUNT_PROPAGATIONS: &[&str] = &["Bidirectional", "HostToContainer", "None"];
const RECURSIVE_READ_ONLY: &[&str] = &["Disabled", "Enabled", "IfPossible"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
/// Downward API fields a volume file may hold.
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const FILE_MODE_ERROR_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

pub(super) fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    path: &str,
    errs: &mut FieldErrors,
) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        if m.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(child(&p, "name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        } else if m.mount_path.contains(':') {
            // Docker reads a bind as `source:target:options`, so a colon
            // here would add options (or a path) of the pod's choosing.
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                &m.mount_path,
                "must not contain ':'",
            ));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = m.sub_path.as_ref().filter(|v| !v.is_empty()) {
            validate_local_descending_path(sub, &child(&p, "subPath"), errs);
        }
        if let Some(expr) = m.sub_path_expr.as_ref().filter(|v| !v.is_empty()) {
            if !unset(m.sub_path.as_ref()) {
                errs.push(FieldError::invalid(
                    child(&p, "subPathExpr"),
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
        if let Some(prop) = m.mount_propagation.as_ref().filter(|v| !v.is_empty()) {
            if !MOUNT_PROPAGATIONS.contains(&prop.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "mountPropagation"),
                    prop,
                    MOUNT_PROPAGATIONS,
                ));
            }
        }
        if let Some(rro) = m.recursive_read_only.as_ref().filter(|v| !v.is_empty()) {
            if !RECURSIVE_READ_ONLY.contains(&rro.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "recursiveReadOnly"),
                    rro,
                    RECURSIVE_READ_ONLY,
                ));
            }
        }
    }
}

/// A relative path without `..` segments (subPath, gitRepo directory, items).
fn validate_local_descending_path(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.starts_with('/') {
        errs.push(FieldError::invalid(path, value, "must be a relative path"));
    }
    validate_path_no_backsteps(value, path, errs);
}

fn validate_path_no_backsteps(value: &str, path: &str, errs: &mut FieldErrors) {
    if value.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, value, "must not contain '..'"));
    }
}

fn validate_file_mode(mode: Option<i32>, path: &str, errs: &mut FieldErrors) {
    if let Some(m) = mode {
        if !(0..=0o777).contains(&m) {
            errs.push(FieldError::invalid(path, m, FILE_MODE_ERROR_MSG));
        }
    }
}

fn validate_key_to_paths(items: &[KeyToPath], path: &str, errs: &mut FieldErrors) {
    for (i, item) in items.iter().enumerate() {
        let p = index(path, i);
        if item.key.is_empty() {
            errs.push(FieldError::required(child(&p, "key"), ""));
        }
        if item.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else {
            validate_local_non_reserved_path(&item.path, &child(&p, "path"), errs);
        }
        validate_file_mode(item.mode, &child(&p, "mode"), errs);
    }
}

/// A descending path that also may not start with `..` (Kubernetes keeps
/// `..data` and friends for itself).
fn validate_local_non_reserved_path(value: &str, path: &str, errs: &mut FieldErrors) {
    let before = errs.len();
    validate_local_descending_path(value, path, errs);
    if errs.len() == before && value.starts_with("..") {
        errs.push(FieldError::invalid(path, value, "must not start with '..'"));
    }
}

/// Validates volumes and returns the names they declare.
pub(super) fn validate_volumes(
    volumes: &[Volume],
    path: &str,
    errs: &mut FieldErrors,
) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = index(path, i);
        validate_volume_source(v, &p, errs);
        let name_path = child(&p, "name");
        if v.name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
            continue;
        }
        push_invalid(errs, &name_path, &v.name, is_dns1123_label(&v.name));
        if !names.insert(v.name.clone()) {
            errs.push(FieldError::duplicate(&name_path, &v.name));
        }
    }
    names
}

fn validate_volume_source(v: &Volume, path: &str, errs: &mut FieldErrors) {
    // In Kubernetes' order, so the second and later sources are the ones
    // reported.
    let present = [
        ("hostPath", v.host_path.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("configMap", v.config_map.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut count = 0;
    for (name, is_set) in present {
        if is_set {
            if count > 0 {
                errs.push(FieldError::forbidden(
                    child(path, name),
                    "may not specify more than 1 volume type",
                ));
            }
            count += 1;
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }

    if let Some(host_path) = &v.host_path {
        let p = child(path, "hostPath");
        if host_path.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else {
            validate_path_no_backsteps(&host_path.path, &child(&p, "path"), errs);
        }
        if let Some(t) = &host_path.type_ {
            if !HOST_PATH_TYPES.contains(&t.as_str()) {
                errs.push(FieldError::not_supported(
                    child(&p, "type"),
                    t,
                    HOST_PATH_TYPES,
                ));
            }
        }
    }
    if let Some(empty_dir) = &v.empty_dir {
        let p = child(path, "emptyDir");
        if let Some(medium) = empty_dir.medium.as_ref().filter(|m| !m.is_empty()) {
            if medium != "Memory" && medium != "HugePages" && !medium.starts_with("HugePages-") {
                errs.push(FieldError::not_supported(
                    child(&p, "medium"),
                    medium,
                    &["", "Memory", "HugePages"],
                ));
            }
        }
        if let Some(limit) = &empty_dir.size_limit {
            match ParsedQuantity::parse(&limit.0) {
                Err(e) => errs.push(quantity_error(child(&p, "sizeLimit"), &limit.0, &e)),
                Ok(q) if q.is_negative() => errs.push(FieldError::forbidden(
                    child(&p, "sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                )),
                Ok(_) => {}
            }
        }
    }
    if let Some(git) = &v.git_repo {
        let p = child(path, "gitRepo");
        if git.repository.is_empty() {
            errs.push(FieldError::required(child(&p, "repository"), ""));
        }
        if let Some(dir) = git.directory.as_ref().filter(|d| !d.is_empty()) {
            validate_local_descending_path(dir, &child(&p, "directory"), errs);
        }
    }
    if let Some(pd) = &v.gce_persistent_disk {
        let p = child(path, "gcePersistentDisk");
        if pd.pd_name.is_empty() {
            errs.push(FieldError::required(child(&p, "pdName"), ""));
        }
        if let Some(partition) = pd.partition {
            if !(0..=255).contains(&partition) {
                errs.push(FieldError::invalid(
                    child(&p, "partition"),
                    partition,
                    inclusive_range_error(1, 255),
                ));
            }
        }
    }
    if let Some(secret) = &v.secret {
        let p = child(path, "secret");
        if unset(secret.secret_name.as_ref()) {
            errs.push(FieldError::required(child(&p, "secretName"), ""));
        }
        validate_file_mode(secret.default_mode, &child(&p, "defaultMode"), errs);
        validate_key_to_paths(
            secret.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
            errs,
        );
    }
    if let Some(nfs) = &v.nfs {
        let p = child(path, "nfs");
        if nfs.server.is_empty() {
            errs.push(FieldError::required(child(&p, "server"), ""));
        }
        if nfs.path.is_empty() {
            errs.push(FieldError::required(child(&p, "path"), ""));
        } else if !nfs.path.starts_with('/') {
            errs.push(FieldError::invalid(
                child(&p, "path"),
                &nfs.path,
                "must be an absolute path",
            ));
        }
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        if pvc.claim_name.is_empty() {
            errs.push(FieldError::required(
                child(&child(path, "persistentVolumeClaim"), "claimName"),
                "",
            ));
        }
    }
    if let Some(downward) = &v.downward_api {
        let p = child(path, "downwardAPI");
        validate_file_mode(downward.default_mode, &child(&p, "defaultMode"), errs);
        for (i, item) in downward.items.iter().flatten().enumerate() {
            let ip = index(&child(&p, "items"), i);
            if item.path.is_empty() {
                errs.push(FieldError::required(child(&ip, "path"), ""));
            } else {
                validate_local_non_reserved_path(&item.path, &child(&ip, "path"), errs);
            }
            validate_file_mode(item.mode, &child(&ip, "mode"), errs);
            match (&item.field_ref, &item.resource_field_ref) {
                (Some(f), None) => validate_object_field_selector(
                    f,
                    VOLUME_FIELD_PATHS,
                    &child(&ip, "fieldRef"),
                    errs,
                ),
                (None, Some(r)) => {
                    validate_resource_field_selector(r, true, &child(&ip, "resourceFieldRef"), errs)
                }
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    &ip,
                    "",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                )),
                (None, None) => errs.push(FieldError::required(
                    &ip,
                    "one of fieldRef and resourceFieldRef is required",
                )),
            }
        }
    }
    if let Some(config_map) = &v.config_map {
        let p = child(path, "configMap");
        if config_map.name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else {
            push_invalid(
                errs,
                &child(&p, "name"),
                &config_map.name,
                name_is_dns_subdomain(&config_map.name, false),
            );
        }
        validate_file_mode(config_map.default_mode, &child(&p, "defaultMode"), errs);
        validate_key_to_paths(
            config_map.items.as_deref().unwrap_or(&[]),
            &child(&p, "items"),
            errs,
        );
    }
    if let Some(projected) = &v.projected {
        validate_file_mode(
            projected.default_mode,
            &child(&child(path, "projected"), "defaultMode"),
            errs,
        );
    }
}
