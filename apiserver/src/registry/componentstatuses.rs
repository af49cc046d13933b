//! `componentstatuses` (v1 `ComponentStatus`): not stored, each get or list
//! probes the components over HTTP, as Kubernetes'
//! `pkg/registry/core/componentstatus` does: every etcd member's `/health`
//! (`etcd-0`, `etcd-1`, ... in `--etcd-servers` order), the scheduler's and
//! the controller manager's `/healthz`.

use std::time::Duration;

use api_types::kinds::{self, ResourceKind};
use api_types::status::Reason;
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use super::{
    DeleteOptions, EncodedObject, ListQuery, ListResult, Patch, Rest, Subresource, WatchStream,
    WriteOptions,
};
use crate::error::{ApiError, Result};

/// How long one probe may take. Kubernetes waits 20 s; a listing waits for
/// its slowest probe, so a component that hangs costs a `kubectl get cs`
/// this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bodies longer than this are cut (Kubernetes' prober reads 10 KiB).
const MAX_BODY: usize = 10 * 1024;

/// One component and where its health is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Component {
    /// `etcd-0`, `scheduler`, `controller-manager`.
    pub name: String,
    /// The URL probed (`http://127.0.0.1:2379/health`).
    pub url: String,
    /// Whether the body is etcd's `{"health":"true"}`, checked as Kubernetes'
    /// `EtcdHealthCheck` does.
    pub etcd: bool,
}

/// The components of a cluster: one per etcd member, then the scheduler
/// and the controller manager unless their URL is empty.
pub fn components(
    etcd_servers: &[String],
    scheduler: &str,
    controller_manager: &str,
) -> Vec<Component> {
    let mut all: Vec<Component> = etcd_servers
        .iter()
        .enumerate()
        .map(|(i, server)| Component {
            name: format!("etcd-{i}"),
            url: format!("{}/health", server.trim_end_matches('/')),
            etcd: true,
        })
        .collect();
    for (name, url) in [
        ("scheduler", scheduler),
        ("controller-manager", controller_manager),
    ] {
        if !url.is_empty() {
            all.push(Component {
                name: name.to_owned(),
                url: url.to_owned(),
                etcd: false,
            });
        }
    }
    all
}

/// The registry: probes on every request.
pub struct ComponentStatuses {
    components: Vec<Component>,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl ComponentStatuses {
    /// Probes `components`.
    pub fn new(components: Vec<Component>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(PROBE_TIMEOUT));
        Self {
            components,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn status(&self, component: &Component) -> Value {
        let (healthy, message, error) = match self.probe(&component.url).await {
            Ok((code, body)) if (200..400).contains(&code) => {
                match component.etcd.then(|| etcd_healthy(&body)) {
                    Some(Err(e)) => (false, body, e),
                    _ => (true, body, String::new()),
                }
            }
            Ok((code, _)) => (
                false,
                format!("HTTP probe failed with statuscode: {code}"),
                String::new(),
            ),
            // As Kubernetes' HTTP prober: a failed request is a failed
            // probe whose message says why.
            Err(e) => (
                false,
                format!("Get {:?}: {e}", component.url),
                String::new(),
            ),
        };
        status_object(&component.name, healthy, &message, &error)
    }

    async fn probe(&self, url: &str) -> std::result::Result<(u16, String), String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("{e}"))?;
        let request = async {
            let response = self.client.get(uri).await.map_err(|e| error_chain(&e))?;
            let code = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((code, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(PROBE_TIMEOUT, request)
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT:?}"))?
    }
}

/// An error and its sources, `a: b: c`, as Go prints wrapped errors.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// etcd's `/health` body says `"health": "true"`.
fn etcd_healthy(body: &str) -> std::result::Result<(), String> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("cannot read etcd's answer: {e}"))?;
    match value.get("health").and_then(Value::as_str) {
        Some("true") => Ok(()),
        _ => Err(format!("etcd reports itself unhealthy: {body}")),
    }
}

/// A v1 `ComponentStatus` with its one `Healthy` condition.
pub fn status_object(name: &str, healthy: bool, message: &str, error: &str) -> Value {
    let mut condition = json!({
        "type": "Healthy",
        "status": if healthy { "True" } else { "False" },
    });
    // Kubernetes leaves empty strings out (omitempty).
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    if !error.is_empty() {
        condition["error"] = json!(error);
    }
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": { "name": name },
        "conditions": [condition],
    })
}

fn refused(verb: &str) -> ApiError {
    ApiError::new(
        Reason::MethodNotAllowed,
        format!("the server does not allow this method on the requested resource ({verb} componentstatuses)"),
    )
}

#[async_trait]
impl Rest for ComponentStatuses {
    fn resource(&self) -> &'static ResourceKind {
        &kinds::COMPONENT_STATUSES
    }

    async fn create_encoded(
        &self,
        _: Option<&str>,
        _: Value,
        _: &WriteOptions,
    ) -> Result<EncodedObject> {
        Err(refused("POST"))
    }

    async fn get(&self, _: Option<&str>, name: &str) -> Result<Value> {
        let component = self
            .components
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| ApiError::not_found("componentstatuses", name))?;
        Ok(self.status(component).await)
    }

    async fn list(&self, _: Option<&str>, query: &ListQuery) -> Result<ListResult> {
        // All at once, as Kubernetes: a listing takes its slowest probe.
        let items = futures::future::join_all(self.components.iter().map(|c| self.status(c)))
            .await
            .into_iter()
            .filter(|item| super::matches(&kinds::COMPONENT_STATUSES, query, item))
            .collect();
        Ok(ListResult {
            items,
            resource_version: String::new(),
            continue_token: None,
            remaining: None,
        })
    }

    async fn update(
        &self,
        _: Option<&str>,
        _: &str,
        _: Value,
        _: Subresource,
        _: &WriteOptions,
    ) -> Result<(Value, bool)> {
        Err(refused("PUT"))
    }

    async fn patch(
        &self,
        _: Option<&str>,
        _: &str,
        _: &Patch,
        _: Subresource,
        _: &WriteOptions,
    ) -> Result<Value> {
        Err(refused("PATCH"))
    }

    async fn delete(&self, _: Option<&str>, _: &str, _: &DeleteOptions) -> Result<Value> {
        Err(refused("DELETE"))
    }

    async fn watch(&self, _: Option<&str>, _: &ListQuery) -> Result<WatchStream> {
        Err(refused("WATCH"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_component_per_etcd_member_then_the_controllers() {
        let all = components(
            &[
                "http://127.0.0.1:2379".into(),
                "http://127.0.0.2:2379/".into(),
            ],
            "http://127.0.0.1:10251/healthz",
            "",
        );
        let names: Vec<(&str, &str)> = all
            .iter()
            .map(|c| (c.name.as_str(), c.url.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("etcd-0", "http://127.0.0.1:2379/health"),
                ("etcd-1", "http://127.0.0.2:2379/health"),
                ("scheduler", "http://127.0.0.1:10251/healthz"),
            ]
        );
    }

    #[test]
    fn etcd_bodies_are_read_as_kubernetes_does() {
        assert!(etcd_healthy(r#"{"health":"true","reason":""}"#).is_ok());
        assert!(etcd_healthy(r#"{"health":"false","reason":"NOSPACE"}"#).is_err());
        assert!(etcd_healthy("ok").is_err());
    }

    #[tokio::test]
    async fn a_closed_port_is_unhealthy_with_the_reason_as_message() {
        // A port just closed: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        let registry = ComponentStatuses::new(components(&[], &url, ""));
        let cs = registry.get(None, "scheduler").await.unwrap();
        assert_eq!(cs["conditions"][0]["status"], "False");
        let message = cs["conditions"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("Get {url:?}: ")), "{message}");
        assert!(registry.get(None, "etcd-0").await.is_err());
        assert_eq!(
            registry
                .create(None, json!({}), &WriteOptions::default())
                .await
                .unwrap_err()
                .code(),
            405
        );
    }
}
