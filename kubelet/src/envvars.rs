//! Service environment variables, as 2014 Kubernetes gave them
//! (`shared/reference/v1beta1.md`): for each service, `{NAME}_SERVICE_HOST`,
//! `{NAME}_SERVICE_PORT` (+ `_{PORTNAME}` for named ports) and the
//! Docker-links style `{NAME}_PORT`, `{NAME}_PORT_{port}_{PROTO}` with
//! `_PROTO`, `_PORT`, `_ADDR`. And a container's own variables: `env`
//! (values, `fieldRef`, `configMapKeyRef`, `secretKeyRef`) and `envFrom`,
//! resolved against the objects its pod refers to.

use k8s_openapi::api::core::v1::{Container, Service};

use crate::objects::{ConfigError, Kind, PodObjects};

/// `my-svc` → `MY_SVC`.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace(['-', '.'], "_")
}

/// The variables of `services` (those without a portal IP are skipped), in order.
pub fn service_env(services: &[&Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let Some(ip) = spec.cluster_ip.as_deref() else {
            continue;
        };
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        let Some(first) = ports.first() else {
            continue;
        };
        let name = env_name(svc.metadata.name.as_deref().unwrap_or_default());
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in ports {
            if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{name}_SERVICE_PORT_{}", env_name(port_name)),
                    p.port.to_string(),
                ));
            }
        }
        let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
            p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase()
        };
        out.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", proto(first), first.port),
        ));
        for p in ports {
            let proto = proto(p);
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            out.push((prefix.clone(), format!("{proto}://{ip}:{}", p.port)));
            out.push((format!("{prefix}_PROTO"), proto.clone()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

/// Kubernetes' `IsEnvVarName`: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// A container's variables, in order (a later one replaces an earlier one
/// of the same name), and the warnings to post about keys left out.
#[derive(Default, PartialEq, Eq)]
pub struct ContainerEnv {
    /// `(name, value)`.
    pub vars: Vec<(String, String)>,
    /// `InvalidEnvironmentVariableNames` event messages (key names only).
    pub skipped: Vec<String>,
}

impl std::fmt::Debug for ContainerEnv {
    // Values may be Secret data: names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerEnv")
            .field("vars", &self.vars.iter().map(|v| &v.0).collect::<Vec<_>>())
            .field("skipped", &self.skipped)
            .finish()
    }
}

impl ContainerEnv {
    fn set(&mut self, name: String, value: String) {
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value));
    }
}

fn bytes_value(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The container's own variables as Kubernetes computes them: `envFrom`
/// first (in order, each key prefixed; keys that are no valid names are
/// skipped with a warning), then `env` (values, then `valueFrom`), a later
/// definition replacing an earlier one. `field` resolves a `fieldRef` path.
///
/// # Errors
///
/// A non-optional ConfigMap or Secret (or key) is missing or unreadable:
/// the container cannot be created (`CreateContainerConfigError`).
pub fn container_env(
    container: &Container,
    namespace: &str,
    objects: &PodObjects,
    field: impl Fn(&str) -> String,
) -> Result<ContainerEnv, ConfigError> {
    let mut out = ContainerEnv::default();
    for from in container.env_from.as_deref().unwrap_or_default() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let source = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => Some((Kind::ConfigMap, &r.name, r.optional)),
            (None, Some(r)) => Some((Kind::Secret, &r.name, r.optional)),
            (None, None) => None,
        };
        let Some((kind, name, optional)) = source else {
            continue;
        };
        let Some(data) = objects.data(kind, name, optional == Some(true))? else {
            continue;
        };
        let mut invalid = Vec::new();
        for (key, value) in &data.0 {
            let var = format!("{prefix}{key}");
            if is_env_var_name(&var) {
                out.set(var, bytes_value(value));
            } else {
                invalid.push(var);
            }
        }
        if !invalid.is_empty() {
            out.skipped.push(format!(
                "Keys [{}] from the EnvFrom {} {namespace}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", "),
                kind.noun()
            ));
        }
    }
    for var in container.env.as_deref().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let key_ref = match (&from.config_map_key_ref, &from.secret_key_ref) {
                    (Some(r), _) => Some((Kind::ConfigMap, &r.name, &r.key, r.optional)),
                    (None, Some(r)) => Some((Kind::Secret, &r.name, &r.key, r.optional)),
                    (None, None) => None,
                };
                if let Some((kind, name, key, optional)) = key_ref {
                    let optional = optional == Some(true);
                    let Some(data) = objects.data(kind, name, optional)? else {
                        continue;
                    };
                    match data.0.get(key) {
                        Some(v) => bytes_value(v),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError::MissingKey {
                                kind,
                                namespace: namespace.into(),
                                name: name.clone(),
                                key: key.clone(),
                            })
                        }
                    }
                } else {
                    from.field_ref
                        .as_ref()
                        .map(|f| field(&f.field_path))
                        .unwrap_or_default()
                }
            }
            (None, None) => String::new(),
        };
        out.set(var.name.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_gives_the_2014_variables() {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": "redis-master"},
            "spec": {"clusterIP": "10.0.0.11", "ports": [
                {"port": 6379, "protocol": "TCP"},
                {"name": "metrics", "port": 9121, "protocol": "UDP"}
            ]}
        }))
        .unwrap();
        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "h"},
            "spec": {"clusterIP": "None", "ports": [{"port": 1}]}
        }))
        .unwrap();
        let env: std::collections::BTreeMap<_, _> =
            service_env(&[&svc, &headless]).into_iter().collect();
        assert_eq!(env["REDIS_MASTER_SERVICE_HOST"], "10.0.0.11");
        assert_eq!(env["REDIS_MASTER_SERVICE_PORT"], "6379");
        assert_eq!(env["REDIS_MASTER_SERVICE_PORT_METRICS"], "9121");
        assert_eq!(env["REDIS_MASTER_PORT"], "tcp://10.0.0.11:6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP"], "tcp://10.0.0.11:6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_PROTO"], "tcp");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_PORT"], "6379");
        assert_eq!(env["REDIS_MASTER_PORT_6379_TCP_ADDR"], "10.0.0.11");
        assert_eq!(env["REDIS_MASTER_PORT_9121_UDP"], "udp://10.0.0.11:9121");
        assert!(!env.keys().any(|k| k.starts_with("H_")));
    }

    fn objects() -> PodObjects {
        use crate::objects::{Data, Fetched};
        let mut o = PodObjects::default();
        let cm = Data(
            [("color", "blue"), ("1bad", "x"), ("log.level", "debug")]
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
                .collect(),
        );
        let secret = Data([("password".to_string(), b"hunter2".to_vec())].into());
        o.0.insert(
            (Kind::ConfigMap, "cm".into()),
            Fetched::Found(std::sync::Arc::new(cm)),
        );
        o.0.insert(
            (Kind::Secret, "s".into()),
            Fetched::Found(std::sync::Arc::new(secret)),
        );
        o
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(
            json!({"name": "c", "image": "i"})
                .as_object()
                .unwrap()
                .clone()
                .into_iter()
                .chain(v.as_object().unwrap().clone())
                .collect::<serde_json::Map<_, _>>()
                .into(),
        )
        .unwrap()
    }

    #[test]
    fn env_from_then_env_with_key_refs_and_prefixes() {
        let c = container(json!({
            "envFrom": [{"configMapRef": {"name": "cm"}},
                        {"prefix": "S_", "secretRef": {"name": "s"}}],
            "env": [{"name": "color", "value": "red"},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
                    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "log.level"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "GONE", "valueFrom": {"configMapKeyRef":
                        {"name": "nope", "key": "k", "optional": true}}}]
        }));
        let env = container_env(&c, "default", &objects(), |p| format!("<{p}>")).unwrap();
        let vars: Vec<(&str, &str)> = env
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            vars,
            [
                ("log.level", "debug"),
                ("S_password", "hunter2"),
                ("color", "red"),
                ("PW", "hunter2"),
                ("LEVEL", "debug"),
                ("NODE", "<spec.nodeName>"),
            ]
        );
        assert_eq!(
            env.skipped,
            ["Keys [1bad] from the EnvFrom configmap default/cm were skipped since they are considered invalid environment variable names."]
        );
        // The Debug form names variables, never values.
        assert!(!format!("{env:?}").contains("hunter2"));
    }

    #[test]
    fn missing_objects_and_keys_fail_unless_optional() {
        let err = |v: serde_json::Value| {
            container_env(&container(v), "ns", &objects(), |_| String::new())
                .map(|e| e.vars.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            err(json!({"envFrom": [{"configMapRef": {"name": "x"}}]})),
            Err("configmap \"x\" not found".into())
        );
        assert_eq!(
            err(json!({"envFrom": [{"secretRef": {"name": "x", "optional": true}}]})),
            Ok(0)
        );
        assert_eq!(
            err(
                json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]})
            ),
            Err("secret \"x\" not found".into())
        );
        assert_eq!(
            err(
                json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
            ),
            Err("couldn't find key k in Secret ns/s".into())
        );
        assert_eq!(
            err(
                json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef":
                {"name": "cm", "key": "k", "optional": true}}}]})
            ),
            Ok(0)
        );
    }

    #[test]
    fn env_var_names_as_kubernetes_checks_them() {
        for ok in ["A", "_a", "a.b", "-x", "A1_"] {
            assert!(is_env_var_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a b", "a=b", "é"] {
            assert!(!is_env_var_name(bad), "{bad}");
        }
    }
}
