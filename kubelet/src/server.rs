//! The kubelet's HTTP server (`--port`, 10250): `/healthz`, `/pods` (a
//! PodList of the pods it runs, with the status it computed) and
//! `/containerLogs/{ns}/{pod}/{container}` (`tailLines`, `previous`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;

use crate::runtime::{ContainerState, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::Kubelet;

/// The router (serve it with `axum::serve` on a listener the caller binds).
pub fn router(kubelet: Kubelet) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/pods", get(pods))
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
        .with_state(kubelet)
}

/// Serves `router(kubelet)` on `listener` until the task is aborted.
///
/// # Errors
///
/// When accepting fails.
pub async fn serve(kubelet: Kubelet, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(kubelet)).await
}

async fn pods(State(kubelet): State<Kubelet>) -> Json<serde_json::Value> {
    Json(json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": kubelet.pods(),
    }))
}

async fn logs(
    State(kubelet): State<Kubelet>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(found) = kubelet.pods().into_iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && p.metadata.name.as_deref() == Some(pod.as_str())
    }) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} not found on this node\n"),
        )
            .into_response();
    };
    let uid = found.metadata.uid.clone().unwrap_or_default();
    let containers = match kubelet.runtime().list_pod_containers(Some(&uid)).await {
        Ok(c) => c,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    let mut instances: Vec<_> = containers
        .into_iter()
        .filter(|c| {
            c.label(LABEL_POD_UID) == Some(uid.as_str())
                && c.label(LABEL_CONTAINER_NAME) == Some(container.as_str())
        })
        .collect();
    instances.sort_by_key(|c| std::cmp::Reverse((c.restart_count(), c.created_at)));
    let previous = query.get("previous").is_some_and(|v| v == "true");
    let chosen = if previous {
        instances
            .iter()
            .skip(1)
            .find(|c| c.state == ContainerState::Exited)
    } else {
        instances.first()
    };
    let Some(chosen) = chosen else {
        return (
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} not found\n"),
        )
            .into_response();
    };
    let tail = query.get("tailLines").and_then(|t| t.parse().ok());
    let follow = query.get("follow").is_some_and(|v| v == "true");
    match kubelet
        .runtime()
        .follow_logs(&chosen.id, tail, follow)
        .await
    {
        Ok(chunks) => {
            let body = axum::body::Body::from_stream(
                chunks.map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string()))),
            );
            ([("content-type", "text/plain")], body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
