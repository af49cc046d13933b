//! Which kubelet serves a pod, how to reach it and with what credentials:
//! the one place the apiserver builds a request to a kubelet (`pods/exec`,
//! `pods/attach`, `pods/portforward`, and the logs).
//!
//! A pod's kubelet is the one of its `spec.nodeName`, reached on the node's
//! `InternalIP` at the port the node reports in
//! `status.daemonEndpoints.kubeletEndpoint` (10250 when it reports none),
//! as Kubernetes' `NodeConnectionInfoGetter` does. Requests are built by
//! [`request`] alone (URI, `Host`, headers passed on, credentials) and sent
//! through a [`Transport`]: the apiserver's `KubeletClient` (HTTPS with its
//! kubelet-client identity when configured, plain HTTP otherwise).

use std::time::Duration;

use api_types::kinds;
use api_types::status::Reason;
use api_types::v1::{Node, Pod};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::error::{ApiError, Result};
use crate::storage::Storage;

/// How long a kubelet may take to answer a request's headers (for an
/// upgrade: the `101`).
pub const KUBELET_TIMEOUT: Duration = Duration::from_secs(10);

/// The request headers passed on to the kubelet: what a WebSocket or SPDY
/// upgrade needs. Everything else (the client's credentials above all)
/// stays at the apiserver, as Kubernetes' upgrade-aware proxy strips them.
const PASSED_HEADERS: [&str; 8] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
    "content-type",
];

/// How requests reach kubelets. Implemented by [`PlainHttp`]; a TLS client
/// carrying the apiserver's kubelet-client certificate is another one.
#[async_trait]
pub trait Transport: Send + Sync {
    /// `http` or `https`.
    fn scheme(&self) -> &'static str;

    /// Sends `request` (upgrades included: the response's connection can be
    /// taken with `hyper::upgrade::on`).
    async fn send(
        &self,
        request: Request<Body>,
    ) -> std::result::Result<Response<Incoming>, hyper_util::client::legacy::Error>;
}

/// Kubelets over plain HTTP (those serving on loopback or a private
/// network without TLS).
#[derive(Clone, Debug)]
pub struct PlainHttp(Client<HttpConnector, Body>);

impl Default for PlainHttp {
    fn default() -> Self {
        Self(Client::builder(TokioExecutor::new()).build(connector()))
    }
}

/// The TCP side of every client to kubelets: Nagle off, so a relayed
/// stream's small frames (exec's status and close) are not held back
/// waiting for the kubelet's delayed ACK.
pub fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector
}

#[async_trait]
impl Transport for PlainHttp {
    fn scheme(&self) -> &'static str {
        "http"
    }

    async fn send(
        &self,
        request: Request<Body>,
    ) -> std::result::Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.0.request(request).await
    }
}

/// The apiserver's client to kubelets (`--kubelet-certificate-authority`
/// and its client identity: HTTPS; otherwise plain HTTP).
#[async_trait]
impl Transport for crate::kubelet_tls::KubeletClient {
    fn scheme(&self) -> &'static str {
        crate::kubelet_tls::KubeletClient::scheme(self)
    }

    async fn send(
        &self,
        request: Request<Body>,
    ) -> std::result::Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Self::Plain(client) => client.request(request).await,
            Self::Tls(client) => client.request(request).await,
        }
    }
}

/// Where one node's kubelet listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubelet {
    /// The node's name.
    pub node: String,
    /// Its `InternalIP` (an IPv6 one in brackets, ready for a URI).
    pub host: String,
    /// The kubelet's port.
    pub port: u16,
}

/// Reads and decodes one stored object; 404 `{what} "{name}" not found`.
///
/// # Errors
///
/// Not found, storage, or a corrupt value.
pub async fn read<T: serde::de::DeserializeOwned>(
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

/// The kubelet of node `name`, from the node's reported status.
///
/// # Errors
///
/// 404 for a node that does not exist, 503 for one reporting no `InternalIP`.
pub async fn of_node(storage: &dyn Storage, name: &str) -> Result<Kubelet> {
    let node: Node = read(storage, &kinds::NODES.key(None, name), "nodes", name).await?;
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
                format!("node {name} reports no InternalIP address"),
            )
        })?;
    let port = status
        .daemon_endpoints
        .and_then(|d| d.kubelet_endpoint)
        .and_then(|e| u16::try_from(e.port).ok())
        .filter(|p| *p != 0)
        .unwrap_or(10250);
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    Ok(Kubelet {
        node: name.to_string(),
        host,
        port,
    })
}

/// The container a request on `pod` addresses: the one named, or the
/// pod's only one, with Kubernetes' messages (400) otherwise.
///
/// # Errors
///
/// 400 for a container the pod lacks, or none named in a pod of several.
pub fn container_of(pod: &Pod, name: &str, requested: Option<&str>) -> Result<String> {
    let spec = pod.spec.as_ref();
    let names: Vec<&str> = spec
        .map(|s| s.containers.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    match (requested.filter(|c| !c.is_empty()), names.as_slice()) {
        (Some(c), _) if names.contains(&c) => Ok(c.to_string()),
        (Some(c), _) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        (None, [only]) => Ok((*only).to_string()),
        (None, []) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        (None, _) => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// The node pod `name` is bound to.
///
/// # Errors
///
/// 400 `pod {name} does not have a host assigned`, as Kubernetes says it.
pub fn node_of(pod: &Pod, name: &str) -> Result<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))
}

/// A pod that a streaming request addresses, its container and kubelet.
#[derive(Clone, Debug)]
pub struct PodTarget {
    /// The pod as stored.
    pub pod: Pod,
    /// The container (named or the only one).
    pub container: String,
    /// Its node's kubelet.
    pub kubelet: Kubelet,
}

/// Kubernetes' `streamLocation` for `pods/exec` and `pods/attach`: the pod
/// exists (404), the container is valid (400), the pod is bound to a node
/// (400 `pod {name} does not have a host assigned`).
///
/// # Errors
///
/// As above, and [`of_node`]'s.
pub async fn pod_target(
    storage: &dyn Storage,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<PodTarget> {
    let pod: Pod = read(
        storage,
        &kinds::PODS.key(Some(namespace), name),
        "pods",
        name,
    )
    .await?;
    let container = container_of(&pod, name, container)?;
    let kubelet = of_node(storage, &node_of(&pod, name)?).await?;
    Ok(PodTarget {
        pod,
        container,
        kubelet,
    })
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// THE request to a kubelet: `method` on `path_and_query` (already
/// encoded) at `kubelet`, in the transport's scheme, with the upgrade
/// headers of `client_headers` passed on and nothing else of the client's.
///
/// # Errors
///
/// 500 if the pieces do not make a URI.
pub fn request(
    transport: &dyn Transport,
    kubelet: &Kubelet,
    method: Method,
    path_and_query: &str,
    client_headers: &HeaderMap,
) -> Result<Request<Body>> {
    let uri = format!(
        "{}://{}:{}{path_and_query}",
        transport.scheme(),
        kubelet.host,
        kubelet.port
    );
    let mut builder = Request::builder().method(method).uri(&uri);
    if let Some(headers) = builder.headers_mut() {
        for name in PASSED_HEADERS {
            for value in client_headers.get_all(name) {
                headers.append(name, value.clone());
            }
        }
        if let Ok(host) = HeaderValue::from_str(&format!("{}:{}", kubelet.host, kubelet.port)) {
            headers.insert("host", host);
        }
    }
    builder
        .body(Body::empty())
        .map_err(|e| ApiError::internal(format!("bad kubelet request {uri}: {e}")))
}

/// Sends `request` and waits up to [`KUBELET_TIMEOUT`] for the answer's
/// head; a kubelet that cannot be reached is a 503 naming it.
///
/// # Errors
///
/// 503 `ServiceUnavailable` when the kubelet does not answer.
pub async fn send(transport: &dyn Transport, request: Request<Body>) -> Result<Response<Incoming>> {
    let uri = request.uri().clone();
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::new(
            Reason::ServiceUnavailable,
            format!("cannot reach the kubelet at {uri}: {e}"),
        )
    };
    tokio::time::timeout(KUBELET_TIMEOUT, transport.send(request))
        .await
        .map_err(|_| unreachable(&"timed out"))?
        .map_err(|e| unreachable(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: &[&str]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers.iter().map(|c| serde_json::json!({"name": c})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        assert_eq!(container_of(&pod(&["a"]), "p", None).unwrap(), "a");
        assert_eq!(
            container_of(&pod(&["a", "b"]), "p", Some("b")).unwrap(),
            "b"
        );
        let error = container_of(&pod(&["a", "b"]), "p", None).unwrap_err();
        assert_eq!(error.code(), 400);
        assert_eq!(
            error.0.message.as_deref(),
            Some("a container name must be specified for pod p, choose one of: [a b]")
        );
        let error = container_of(&pod(&["a"]), "p", Some("x")).unwrap_err();
        assert_eq!(
            error.0.message.as_deref(),
            Some("container x is not valid for pod p")
        );
    }

    #[test]
    fn only_upgrade_headers_reach_the_kubelet() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("v5.channel.k8s.io, v4.channel.k8s.io"),
        );
        let kubelet = Kubelet {
            node: "n".into(),
            host: "127.0.0.1".into(),
            port: 10250,
        };
        let request = request(
            &PlainHttp::default(),
            &kubelet,
            Method::GET,
            "/exec/ns/p/c?command=echo",
            &headers,
        )
        .unwrap();
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:10250/exec/ns/p/c?command=echo"
        );
        assert!(request.headers().get("authorization").is_none());
        assert_eq!(request.headers()["upgrade"], "websocket");
        assert_eq!(request.headers()["host"], "127.0.0.1:10250");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("sh -c 'exit 3'&x=1"),
            "sh%20-c%20%27exit%203%27%26x%3D1"
        );
        assert_eq!(encode("a-b.c_d~"), "a-b.c_d~");
    }
}
