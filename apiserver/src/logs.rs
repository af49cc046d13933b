//! `pods/{name}/log`: the container's log, fetched from the kubelet of the
//! pod's node (`/containerLogs/{ns}/{pod}/{container}` on the port the node
//! reports in `status.daemonEndpoints.kubeletEndpoint`) and streamed back.
//!
//! The `PodLogOptions` query (`sinceSeconds`, `sinceTime`, `tailLines`,
//! `limitBytes`, `timestamps`, `previous`, `follow`) is validated here as
//! Kubernetes' `ValidatePodLogOptions` does (a malformed value is a 400, a
//! value out of range a 422 `Invalid`), then passed on to the kubelet,
//! which applies it.

use std::time::Duration;

use api_types::kinds;
use api_types::status::{FieldError, FieldErrorKind, Reason};
use api_types::v1::Pod;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;

use crate::error::{ApiError, Result};
use crate::http::Params;
use crate::kubelet_client;
use crate::storage::Storage;

/// How long the kubelet may take to start answering.
const KUBELET_TIMEOUT: Duration = Duration::from_secs(10);

/// The kubelet URL of the log of `container` (or the pod's only container).
async fn kubelet_url(
    storage: &dyn Storage,
    namespace: &str,
    name: &str,
    params: &Params,
    scheme: &str,
) -> Result<String> {
    // Options first, as Kubernetes checks them before it looks at the pod.
    let query = log_query(name, params)?;
    let pod: Pod = kubelet_client::read(
        storage,
        &kinds::PODS.key(Some(namespace), name),
        "pods",
        name,
    )
    .await?;
    let container =
        kubelet_client::container_of(&pod, name, params.get("container").map(String::as_str))?;
    let node_name = pod
        .spec
        .and_then(|s| s.node_name)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "pod {name} is not scheduled to a node yet; it has no logs"
            ))
        })?;
    let kubelet_client::Kubelet { host, port, .. } =
        kubelet_client::of_node(storage, &node_name).await?;
    Ok(format!(
        "{scheme}://{host}:{port}/containerLogs/{namespace}/{name}/{container}{}{}",
        if query.is_empty() { "" } else { "?" },
        query.join("&")
    ))
}

/// The log options of the query, checked as Kubernetes' `ValidatePodLogOptions`
/// checks them, as the kubelet's query (`key=value`, encoded).
fn log_query(name: &str, params: &Params) -> Result<Vec<String>> {
    let int = |key: &str| -> Result<Option<i64>> {
        params
            .get(key)
            .map(|v| {
                v.parse::<i64>().map_err(|e| {
                    ApiError::bad_request(format!("invalid value {v:?} for {key}: {e}"))
                })
            })
            .transpose()
    };
    let flag = |key: &str| -> Result<Option<bool>> {
        params
            .get(key)
            .map(|v| match v.as_str() {
                "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
                "false" | "0" | "False" | "FALSE" | "f" | "F" | "" => Ok(false),
                other => Err(ApiError::bad_request(format!(
                    "invalid value {other:?} for {key}: not a boolean"
                ))),
            })
            .transpose()
    };
    let tail_lines = int("tailLines")?;
    let limit_bytes = int("limitBytes")?;
    let since_seconds = int("sinceSeconds")?;
    let since_time = params
        .get("sinceTime")
        .map(|v| {
            v.parse::<jiff::Timestamp>().map_err(|e| {
                ApiError::bad_request(format!(
                    "invalid value {v:?} for sinceTime: not an RFC 3339 time: {e}"
                ))
            })
        })
        .transpose()?;
    let mut errors = Vec::new();
    if let Some(n) = tail_lines.filter(|n| *n < 0) {
        errors.push(FieldError::invalid(
            "tailLines",
            n,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = limit_bytes.filter(|n| *n < 1) {
        errors.push(FieldError::invalid(
            "limitBytes",
            n,
            "must be greater than 0",
        ));
    }
    match (since_seconds, since_time) {
        (Some(_), Some(_)) => errors.push(FieldError::new(
            FieldErrorKind::Forbidden,
            "",
            None,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        )),
        (Some(n), None) if n < 1 => {
            errors.push(FieldError::invalid(
                "sinceSeconds",
                n,
                "must be greater than 0",
            ));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("PodLogOptions", name, &errors));
    }
    let mut query = Vec::new();
    for (key, value) in [
        ("tailLines", tail_lines),
        ("limitBytes", limit_bytes),
        ("sinceSeconds", since_seconds),
    ] {
        if let Some(value) = value {
            query.push(format!("{key}={value}"));
        }
    }
    if let Some(time) = since_time {
        // Whole seconds, as metav1.Time carries it; ':' needs no escaping
        // in a query but '+' would, so the UTC form is sent.
        query.push(format!(
            "sinceTime={}",
            jiff::Timestamp::from_second(time.as_second()).unwrap_or(time)
        ));
    }
    for key in ["previous", "follow", "timestamps"] {
        if flag(key)? == Some(true) {
            query.push(format!("{key}=true"));
        }
    }
    Ok(query)
}

/// The most of a kubelet's error answer that is read.
const MAX_KUBELET_ERROR_BYTES: usize = 64 * 1024;

/// Streams the log; a kubelet that cannot be reached is a 503 naming it.
pub async fn pod_log(
    storage: &dyn Storage,
    kubelet: &crate::kubelet_tls::KubeletClient,
    namespace: &str,
    name: &str,
    params: &Params,
) -> Result<axum::response::Response> {
    let url = kubelet_url(storage, namespace, name, params, kubelet.scheme()).await?;
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| ApiError::internal(format!("bad kubelet URL {url}: {e}")))?;
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("cannot reach the kubelet at {url}: {e}"),
        )
    };
    let response = tokio::time::timeout(KUBELET_TIMEOUT, kubelet.get(uri))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn options_pass_through_in_kubelet_form() {
        let query = log_query(
            "p",
            &params(&[
                ("tailLines", "2"),
                ("limitBytes", "10"),
                ("sinceTime", "2026-12-06T07:00:00.5+01:00"),
                ("timestamps", "true"),
                ("follow", "false"),
                ("previous", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            query,
            [
                "tailLines=2",
                "limitBytes=10",
                "sinceTime=2026-12-06T06:00:00Z",
                "previous=true",
                "timestamps=true"
            ]
        );
    }

    #[test]
    fn out_of_range_options_are_invalid_as_kubernetes_says() {
        let error = log_query(
            "p",
            &params(&[
                ("tailLines", "-1"),
                ("limitBytes", "0"),
                ("sinceSeconds", "5"),
                ("sinceTime", "2026-12-06T07:00:00Z"),
            ]),
        )
        .unwrap_err();
        assert_eq!(error.code(), 422);
        let message = error.0.message.clone().unwrap_or_default();
        assert!(
            message.starts_with("PodLogOptions \"p\" is invalid: ["),
            "{message}"
        );
        assert!(
            message
                .contains("tailLines: Invalid value: \"-1\": must be greater than or equal to 0"),
            "{message}"
        );
        assert!(
            message.contains("limitBytes: Invalid value: \"0\": must be greater than 0"),
            "{message}"
        );
        assert!(
            message.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"),
            "{message}"
        );
        let error = log_query("p", &params(&[("sinceSeconds", "0")])).unwrap_err();
        assert_eq!(error.code(), 422);
    }

    #[test]
    fn malformed_options_are_bad_requests() {
        for (key, value) in [
            ("tailLines", "x"),
            ("sinceTime", "yesterday"),
            ("follow", "maybe"),
        ] {
            let error = log_query("p", &params(&[(key, value)])).unwrap_err();
            assert_eq!(error.code(), 400, "{key}={value}");
        }
    }
}
