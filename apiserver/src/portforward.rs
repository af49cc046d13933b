//! `pods/{name}/portforward`: checked here, then relayed to the pod's
//! kubelet (`/portForward/{ns}/{name}`) as an upgrade, like `pods/exec`
//! ([`crate::exec`]). The apiserver only moves bytes: kubectl's SPDY (plain
//! or tunneled in a WebSocket) and the `v4.channel.k8s.io` WebSocket of
//! the Python client are the kubelet's to speak.
//!
//! Checked first, with Kubernetes' messages: the pod exists (404), is bound
//! to a node (400 `pod {name} does not have a host assigned`) and running
//! (400, kubectl's own check, made here too so other clients get it), and
//! every `ports` value is a port (400). Ports are passed on as Kubernetes'
//! `PortForwardLocation` does, one `port=` each; kubectl's SPDY names
//! them per stream instead and sends none.

use std::sync::Arc;

use api_types::kinds;
use api_types::v1::Pod;
use axum::extract::{Path, Query, Request, State};

use crate::error::{ApiError, Result};
use crate::http::path::Version;
use crate::kubelet_client;
use crate::server::ApiState;

/// `GET|POST /api/v1/namespaces/{ns}/pods/{name}/portforward`.
pub async fn portforward(
    State(state): State<Arc<ApiState>>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> axum::response::Response {
    match relay(&state, &ns, &name, &query, request).await {
        Ok(response) => response,
        Err(error) => crate::http::error_response(Version::V1, Some(&kinds::PODS), &error),
    }
}

/// The ports of `ports` (and `port`) values, comma-separated lists allowed.
///
/// # Errors
///
/// 400 for a value that is not a port from 1 to 65535.
pub fn ports(query: &[(String, String)]) -> Result<Vec<u16>> {
    let mut ports = Vec::new();
    for (_, value) in query.iter().filter(|(k, _)| k == "ports" || k == "port") {
        for p in value.split(',').map(str::trim) {
            match p.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "invalid port {p:?}: must be between 1 and 65535"
                    )))
                }
            }
        }
    }
    Ok(ports)
}

async fn relay(
    state: &ApiState,
    ns: &str,
    name: &str,
    query: &[(String, String)],
    request: Request,
) -> Result<axum::response::Response> {
    let ports = ports(query)?;
    let storage = state.storage.as_ref();
    let pod: Pod =
        kubelet_client::read(storage, &kinds::PODS.key(Some(ns), name), "pods", name).await?;
    let node = kubelet_client::node_of(&pod, name)?;
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    if phase != "Running" {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod is not running. Current status={phase}"
        )));
    }
    let kubelet = kubelet_client::of_node(storage, &node).await?;
    let mut path = format!(
        "/portForward/{}/{}",
        kubelet_client::encode(ns),
        kubelet_client::encode(name)
    );
    for (i, port) in ports.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str(&format!("port={port}"));
    }
    crate::exec::relay_upgrade(
        &state.kubelet,
        &kubelet,
        &path,
        request,
        format!("portforward {ns}/{name}"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::ports;

    #[test]
    fn ports_come_from_every_value_and_comma_list() {
        let query = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            ports(&query(&[("ports", "80,8080"), ("ports", "9000")])).unwrap(),
            [80, 8080, 9000]
        );
        assert_eq!(ports(&query(&[])).unwrap(), Vec::<u16>::new());
        for bad in ["0", "65536", "x", ""] {
            let error = ports(&query(&[("ports", bad)])).unwrap_err();
            assert_eq!(error.code(), 400, "{bad}");
        }
    }
}
