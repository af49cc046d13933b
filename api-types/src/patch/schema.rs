//! Strategic merge patch metadata of the core/v1 kinds the API serves: which
//! lists merge, and the key their elements are matched by.
//!
//! These are the `patchStrategy`/`patchMergeKey` struct tags of
//! `k8s.io/api/core/v1` (and `ObjectMeta`'s of apimachinery). Only the paths
//! that lead to a merging list are listed: every other list is replaced
//! whole, every other map merges key by key, which is what a field without a
//! tag does. `retainKeys` needs no entry: the `$retainKeys` directive a client
//! sends is all that applying it takes.

/// The key elements of a merging list of maps are matched by.
#[derive(Debug)]
pub(crate) struct MergeKey {
    /// The field named by `patchMergeKey` (`name`).
    pub(crate) field: &'static str,
    /// Fields that tell apart elements sharing `field` (a port open for both
    /// TCP and UDP), each with its default. A patch element that does not set
    /// one matches whatever the element has; one that sets it matches only
    /// elements with that value (or without it, when it is the default).
    pub(crate) discriminators: &'static [(&'static str, &'static str)],
}

/// How a list field is patched.
#[derive(Debug)]
pub(crate) enum ListStrategy {
    /// Replaced whole by the patch's list (no tag, or a map field).
    Replace,
    /// `patchStrategy: merge` on a list of scalars: a set union.
    MergeSet,
    /// `patchStrategy: merge` on a list of maps, by this key.
    MergeBy(MergeKey),
}

/// One field of a struct that leads to a merging list.
#[derive(Debug)]
pub(crate) struct Field {
    /// The JSON name.
    pub(crate) name: &'static str,
    /// The list strategy, when the field is a list.
    pub(crate) list: ListStrategy,
    /// The schema of the field's value (a struct) or of its elements (a list
    /// of structs), when something below it merges.
    pub(crate) schema: Option<&'static Schema>,
}

/// A struct: those of its fields that matter to strategic merge patch.
#[derive(Debug)]
pub(crate) struct Schema {
    fields: &'static [Field],
}

impl Schema {
    /// The metadata of field `name`; `None` for a field with nothing that
    /// merges below it (or one this struct does not have).
    pub(crate) fn field(&'static self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The schema of the objects of `kind` (`Pod`), or `None` for a kind without
/// patch metadata.
pub(crate) fn for_kind(kind: &str) -> Option<&'static Schema> {
    match kind {
        "Pod" => Some(&POD),
        "Service" => Some(&SERVICE),
        // A DaemonSet's spec merges below `template` only, as an RC's.
        "ReplicationController" | "DaemonSet" => Some(&REPLICATION_CONTROLLER),
        "Node" => Some(&NODE),
        "Namespace" => Some(&NAMESPACE),
        "Endpoints" | "Event" | "Scale" => Some(&METADATA_ONLY),
        _ => None,
    }
}

/// A list of a kind that strategic merge patch merges, as the OpenAPI
/// documents describe it to clients (`x-kubernetes-patch-strategy`,
/// `-patch-merge-key`, `-list-type`, `-list-map-keys`), so that the
/// schemas kubectl reads and the patches the server applies come from this
/// one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergingList {
    /// Field names from the kind's root; a name after a list of maps is a
    /// field of its elements (`["spec", "containers", "ports"]`).
    pub path: Vec<&'static str>,
    /// The `patchMergeKey` of a list of maps; `None` for a set of scalars.
    pub merge_key: Option<&'static str>,
    /// The fields that identify an element (the merge key, then
    /// discriminators such as `protocol`); empty for a set.
    pub map_keys: Vec<&'static str>,
}

/// Every merging list of `kind`'s objects (empty for a kind without patch
/// metadata).
pub fn merging_lists(kind: &str) -> Vec<MergingList> {
    fn walk(schema: &'static Schema, prefix: &[&'static str], out: &mut Vec<MergingList>) {
        for field in schema.fields {
            let mut path = prefix.to_vec();
            path.push(field.name);
            match &field.list {
                ListStrategy::MergeBy(key) => out.push(MergingList {
                    path: path.clone(),
                    merge_key: Some(key.field),
                    map_keys: std::iter::once(key.field)
                        .chain(key.discriminators.iter().map(|(name, _)| *name))
                        .collect(),
                }),
                ListStrategy::MergeSet => out.push(MergingList {
                    path: path.clone(),
                    merge_key: None,
                    map_keys: Vec::new(),
                }),
                ListStrategy::Replace => {}
            }
            if let Some(below) = field.schema {
                walk(below, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(schema) = for_kind(kind) {
        walk(schema, &[], &mut out);
    }
    out
}

const fn object(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        list: ListStrategy::Replace,
        schema: Some(schema),
    }
}

const fn merge_by(name: &'static str, key: &'static str, schema: Option<&'static Schema>) -> Field {
    Field {
        name,
        list: ListStrategy::MergeBy(MergeKey {
            field: key,
            discriminators: &[],
        }),
        schema,
    }
}

/// A list of ports merged by port number and, where the patch says,
/// protocol (whose default is TCP).
const fn ports_by(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::MergeBy(MergeKey {
            field: key,
            discriminators: &[("protocol", "TCP")],
        }),
        schema: None,
    }
}

const fn merge_set(name: &'static str) -> Field {
    Field {
        name,
        list: ListStrategy::MergeSet,
        schema: None,
    }
}

static OBJECT_META: Schema = Schema {
    fields: &[
        merge_by("ownerReferences", "uid", None),
        merge_set("finalizers"),
    ],
};

static METADATA_ONLY: Schema = Schema {
    fields: &[object("metadata", &OBJECT_META)],
};

/// `Container` and `EphemeralContainer` (whose common fields are inline).
static CONTAINER: Schema = Schema {
    fields: &[
        ports_by("ports", "containerPort"),
        merge_by("env", "name", None),
        merge_by("volumeMounts", "mountPath", None),
        merge_by("volumeDevices", "devicePath", None),
    ],
};

static POD_SPEC: Schema = Schema {
    fields: &[
        merge_by("volumes", "name", None),
        merge_by("initContainers", "name", Some(&CONTAINER)),
        merge_by("containers", "name", Some(&CONTAINER)),
        merge_by("ephemeralContainers", "name", Some(&CONTAINER)),
        merge_by("imagePullSecrets", "name", None),
        merge_by("hostAliases", "ip", None),
        merge_by("topologySpreadConstraints", "topologyKey", None),
        merge_by("schedulingGates", "name", None),
        merge_by("resourceClaims", "name", None),
        merge_by("evictionResponders", "name", None),
    ],
};

static NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS: Schema = Schema {
    fields: &[
        merge_by("mapping", "name", None),
        merge_by("overhead", "name", None),
    ],
};

static POD_STATUS: Schema = Schema {
    fields: &[
        merge_by("conditions", "type", None),
        merge_by("hostIPs", "ip", None),
        merge_by("podIPs", "ip", None),
        merge_by("resourceClaimStatuses", "name", None),
        merge_by(
            "nodeAllocatableResourceClaimStatuses",
            "resourceClaimName",
            Some(&NODE_ALLOCATABLE_RESOURCE_CLAIM_STATUS),
        ),
    ],
};

static POD: Schema = Schema {
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &POD_SPEC),
        object("status", &POD_STATUS),
    ],
};

static POD_TEMPLATE_SPEC: Schema = Schema {
    fields: &[object("metadata", &OBJECT_META), object("spec", &POD_SPEC)],
};

/// The `status` of replication controllers, services and namespaces.
static CONDITIONS_BY_TYPE: Schema = Schema {
    fields: &[merge_by("conditions", "type", None)],
};

static REPLICATION_CONTROLLER_SPEC: Schema = Schema {
    fields: &[object("template", &POD_TEMPLATE_SPEC)],
};

static REPLICATION_CONTROLLER: Schema = Schema {
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &REPLICATION_CONTROLLER_SPEC),
        object("status", &CONDITIONS_BY_TYPE),
    ],
};

static SERVICE_SPEC: Schema = Schema {
    fields: &[ports_by("ports", "port")],
};

static SERVICE: Schema = Schema {
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &SERVICE_SPEC),
        object("status", &CONDITIONS_BY_TYPE),
    ],
};

static NODE_SPEC: Schema = Schema {
    fields: &[merge_set("podCIDRs")],
};

static NODE_STATUS: Schema = Schema {
    fields: &[
        merge_by("conditions", "type", None),
        merge_by("addresses", "type", None),
    ],
};

static NODE: Schema = Schema {
    fields: &[
        object("metadata", &OBJECT_META),
        object("spec", &NODE_SPEC),
        object("status", &NODE_STATUS),
    ],
};

static NAMESPACE: Schema = Schema {
    fields: &[
        object("metadata", &OBJECT_META),
        object("status", &CONDITIONS_BY_TYPE),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    fn merge_key(kind: &str, path: &[&str]) -> Option<&'static str> {
        let (last, parents) = path.split_last()?;
        let mut schema = for_kind(kind)?;
        for p in parents {
            schema = schema.field(p)?.schema?;
        }
        match &schema.field(last)?.list {
            ListStrategy::MergeBy(key) => Some(key.field),
            ListStrategy::MergeSet => Some("(set)"),
            ListStrategy::Replace => None,
        }
    }

    #[test]
    fn merging_lists_walk_the_table_with_their_keys() {
        let lists = merging_lists("ReplicationController");
        let find = |path: &[&str]| lists.iter().find(|l| l.path == path).cloned();
        let ports = find(&["spec", "template", "spec", "containers", "ports"]).expect("ports");
        assert_eq!(ports.merge_key, Some("containerPort"));
        assert_eq!(ports.map_keys, ["containerPort", "protocol"]);
        let finalizers = find(&["metadata", "finalizers"]).expect("finalizers");
        assert_eq!((finalizers.merge_key, finalizers.map_keys.len()), (None, 0));
        assert!(find(&["spec", "template", "spec", "containers"]).is_some());
        assert!(merging_lists("ConfigMap").is_empty());
    }

    #[test]
    fn core_v1_tags() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("Pod", &["spec", "containers"], Some("name")),
            ("Pod", &["spec", "initContainers", "env"], Some("name")),
            (
                "Pod",
                &["spec", "containers", "ports"],
                Some("containerPort"),
            ),
            (
                "Pod",
                &["spec", "ephemeralContainers", "volumeMounts"],
                Some("mountPath"),
            ),
            (
                "Pod",
                &["spec", "containers", "volumeDevices"],
                Some("devicePath"),
            ),
            ("Pod", &["spec", "volumes"], Some("name")),
            ("Pod", &["spec", "imagePullSecrets"], Some("name")),
            ("Pod", &["spec", "hostAliases"], Some("ip")),
            (
                "Pod",
                &["spec", "topologySpreadConstraints"],
                Some("topologyKey"),
            ),
            ("Pod", &["spec", "tolerations"], None),
            ("Pod", &["spec", "containers", "args"], None),
            ("Pod", &["spec", "containers", "command"], None),
            ("Pod", &["status", "conditions"], Some("type")),
            ("Pod", &["status", "containerStatuses"], None),
            ("Pod", &["metadata", "ownerReferences"], Some("uid")),
            ("Pod", &["metadata", "finalizers"], Some("(set)")),
            (
                "ReplicationController",
                &["spec", "template", "spec", "containers", "env"],
                Some("name"),
            ),
            (
                "ReplicationController",
                &["spec", "template", "metadata", "finalizers"],
                Some("(set)"),
            ),
            (
                "ReplicationController",
                &["status", "conditions"],
                Some("type"),
            ),
            ("Service", &["spec", "ports"], Some("port")),
            ("Service", &["spec", "externalIPs"], None),
            ("Node", &["status", "conditions"], Some("type")),
            ("Node", &["status", "addresses"], Some("type")),
            ("Node", &["spec", "podCIDRs"], Some("(set)")),
            ("Node", &["spec", "taints"], None),
            ("Namespace", &["status", "conditions"], Some("type")),
            ("Namespace", &["spec", "finalizers"], None),
            ("Endpoints", &["subsets"], None),
            ("Endpoints", &["metadata", "ownerReferences"], Some("uid")),
            ("Event", &["metadata", "finalizers"], Some("(set)")),
        ];
        for (kind, path, want) in cases {
            assert_eq!(merge_key(kind, path), *want, "{kind} {path:?}");
        }
        assert!(for_kind("Deployment").is_none());
    }
}
