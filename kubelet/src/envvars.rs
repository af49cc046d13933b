//! Service environment variables, as 2014 Kubernetes gave them
//! (`shared/reference/v1beta1.md`): for each service, `{NAME}_SERVICE_HOST`,
//! `{NAME}_SERVICE_PORT` (+ `_{PORTNAME}` for named ports) and the
//! Docker-links style `{NAME}_PORT`, `{NAME}_PORT_{port}_{PROTO}` with
//! `_PROTO`, `_PORT`, `_ADDR`.

use k8s_openapi::api::core::v1::Service;

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
}
