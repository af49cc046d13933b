//! A scripted apiserver for the reconcilers' unit tests: a `kube::Client`
//! over an in-memory tower service that records every request and answers
//! it from a script (by default: a write succeeds and echoes its object).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One request the client sent.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// The JSON body, `Null` when there was none.
    pub body: Value,
}

impl Recorded {
    /// `"POST /api/v1/namespaces/default/pods"`, without the query.
    pub fn line(&self) -> String {
        let path = self.uri.split('?').next().unwrap_or_default();
        format!("{} {path}", self.method)
    }
}

/// Answers one request: a status and a JSON body, or `None` for the
/// default answer.
type Script = dyn Fn(&Recorded) -> Option<(StatusCode, Value)> + Send + Sync;

/// The recorded requests of one scripted client.
#[derive(Clone, Default)]
pub(crate) struct ApiServer {
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl ApiServer {
    /// A client whose every request gets the default answer.
    pub fn client() -> (Client, Self) {
        Self::scripted(|_| None)
    }

    /// A client whose requests `script` answers first.
    pub fn scripted(
        script: impl Fn(&Recorded) -> Option<(StatusCode, Value)> + Send + Sync + 'static,
    ) -> (Client, Self) {
        let server = Self::default();
        let script: Arc<Script> = Arc::new(script);
        let requests = server.requests.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let (script, requests) = (script.clone(), requests.clone());
            async move {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method,
                    uri: parts.uri.to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, answer) =
                    script(&recorded).unwrap_or_else(|| default_answer(&recorded));
                requests.lock().unwrap().push(recorded);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(answer.to_string().into_bytes()))
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        (Client::new(service, "default"), server)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Every request so far as `"METHOD /path"`.
    pub fn lines(&self) -> Vec<String> {
        self.requests().iter().map(Recorded::line).collect()
    }
}

/// A write echoes its object (a patch answers with a bare object of the
/// resource's kind); a read finds nothing.
fn default_answer(request: &Recorded) -> (StatusCode, Value) {
    match request.method {
        Method::POST => (StatusCode::CREATED, request.body.clone()),
        Method::PUT => (StatusCode::OK, request.body.clone()),
        Method::PATCH | Method::DELETE => (StatusCode::OK, bare_object(&request.uri)),
        _ => (
            StatusCode::NOT_FOUND,
            status(StatusCode::NOT_FOUND, "NotFound"),
        ),
    }
}

/// `{"apiVersion": ..., "kind": ..., "metadata": {"name": ...}}` for a
/// resource path.
fn bare_object(uri: &str) -> Value {
    let path = uri.split('?').next().unwrap_or_default();
    let mut segments: Vec<&str> = path.split('/').collect();
    if segments.last() == Some(&"status") {
        segments.pop();
    }
    let name = segments.pop().unwrap_or_default();
    let (api_version, kind) = match segments.pop().unwrap_or_default() {
        "pods" => ("v1", "Pod"),
        "replicationcontrollers" => ("v1", "ReplicationController"),
        "endpoints" => ("v1", "Endpoints"),
        "services" => ("v1", "Service"),
        "daemonsets" => ("apps/v1", "DaemonSet"),
        other => panic!("the scripted apiserver knows no {other:?}"),
    };
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "default"}})
}

/// A `Status` failure body, as the apiserver sends.
pub(crate) fn status(code: StatusCode, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure",
        "message": reason, "reason": reason, "code": code.as_u16()})
}

/// A reflector store holding `objects`, as a synced cache would.
pub(crate) fn store<K>(objects: impl IntoIterator<Item = K>) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::watcher::Event;
    let (store, mut writer) = kube::runtime::reflector::store::<K>();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}
