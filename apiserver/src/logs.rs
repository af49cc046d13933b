//! `pods/{name}/log`: the container's log, fetched from the kubelet of the
//! pod's node (`/containerLogs/{ns}/{pod}/{container}` on the port the node
//! reports in `status.daemonEndpoints.kubeletEndpoint`) and streamed back.

use std::time::Duration;

use api_types::kinds;
use api_types::status::Reason;
use api_types::v1::{Node, Pod};
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{ApiError, Result};
use crate::http::Params;
use crate::storage::Storage;

/// How long the kubelet may take to start answering.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(10);

async fn read<T: serde::de::DeserializeOwned>(
    storage: &dyn Storage,
    key: &str,
    what: &str,
    name: &str,
) -> Result<T> {
    let stored = storage
        .get(key)
        .await?
        .ok_or_else(|| ApiError::not_found(what, name))?;
    serde_json::from_slice(&stored.value)
        .map_err(|e| ApiError::internal(format!("stored {what} {name:?} is corrupt: {e}")))
}

/// The kubelet URL of the log of `container` (or the pod's only container).
async fn kubelet_url(
    storage: &dyn Storage,
    namespace: &str,
    name: &str,
    params: &Params,
) -> Result<String> {
    let pod: Pod = read(
        storage,
        &kinds::PODS.key(Some(namespace), name),
        "pods",
        name,
    )
    .await?;
    let spec = pod.spec.unwrap_or_default();
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let container = match (params.get("container"), names.as_slice()) {
        (Some(c), _) if names.contains(&c.as_str()) => c.clone(),
        (Some(c), _) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        (None, [only]) => (*only).to_string(),
        (None, _) => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    let node_name = spec.node_name.filter(|n| !n.is_empty()).ok_or_else(|| {
        ApiError::bad_request(format!(
            "pod {name} is not scheduled to a node yet; it has no logs"
        ))
    })?;
    let node: Node = read(
        storage,
        &kinds::NODES.key(None, &node_name),
        "nodes",
        &node_name,
    )
    .await?;
    let status = node.status.unwrap_or_default();
    let address = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .ok_or_else(|| {
            ApiError::new(
                Reason::ServiceUnavailable,
                format!("node {node_name} reports no InternalIP address"),
            )
        })?;
    let port = status
        .daemon_endpoints
        .and_then(|d| d.kubelet_endpoint)
        .map_or(10250, |e| e.port);
    let mut query = Vec::new();
    for key in [
        "tailLines",
        "previous",
        "follow",
        "timestamps",
        "sinceSeconds",
    ] {
        if let Some(value) = params.get(key) {
            query.push(format!("{key}={value}"));
        }
    }
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    Ok(format!(
        "http://{host}:{port}/containerLogs/{namespace}/{name}/{container}{}{}",
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    ))
}

/// The most of a kubelet's error answer that is read.
const MAX_KUBELET_ERROR_BYTES: usize = 64 * 1024;

/// Streams the log; a kubelet that cannot be reached is a 503 naming it.
pub async fn pod_log(
    storage: &dyn Storage,
    namespace: &str,
    name: &str,
    params: &Params,
) -> Result<axum::response::Response> {
    let url = kubelet_url(storage, namespace, name, params).await?;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| ApiError::internal(format!("bad kubelet URL {url}: {e}")))?;
    let client: Client<_, Body> = Client::builder(TokioExecutor::new()).build_http();
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("cannot reach the kubelet at {url}: {e}"),
        )
    };
    let response = tokio::time::timeout(KUBELET_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| unreachable(&"timed out"))?
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    if !status.is_success() {
        // The kubelet's message is what the user needs ("previous
        // terminated container ... not found"), passed on bare as
        // Kubernetes does; read no more of it than a message can be.
        let text = http_body_util::Limited::new(response.into_body(), MAX_KUBELET_ERROR_BYTES)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_else(|_| format!("the kubelet answered {status}"));
        let reason = if status == StatusCode::NOT_FOUND {
            Reason::NotFound
        } else if status.is_client_error() {
            Reason::BadRequest
        } else {
            Reason::InternalError
        };
        let message = match text.trim() {
            "" => format!("the kubelet answered {status}"),
            message => message.to_string(),
        };
        return Err(ApiError::new(reason, message));
    }
    let mut answer = Response::new(Body::new(response.into_body()));
    answer
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    Ok(answer)
}
