//! The HTTP face of the API: routing, content negotiation, body limits,
//! and the translation between requests and registry calls.

pub mod body;
pub mod limits;
pub mod path;
mod routes;
pub mod table;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use api_types::fields::FieldSelector;
use api_types::kinds::ResourceKind;
use api_types::labels::Selector;
use api_types::status::FieldError;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};

use self::body::{wants_table, wants_yaml, AcceptedBody};
use self::path::{Target, Version};
use crate::codec;
use crate::error::{ApiError, Result};
use crate::protobuf;
use crate::registry::{DeleteOptions, ListQuery, Propagation, WriteOptions};
use crate::server::ApiState;

/// Query parameters, as sent.
pub type Params = HashMap<String, String>;

/// Renders an error for the version the client speaks.
pub fn error_response(
    version: Version,
    resource: Option<&ResourceKind>,
    error: &ApiError,
) -> Response {
    let body = match version {
        Version::V1 => {
            let mut value = serde_json::to_value(&*error.0).unwrap_or_default();
            if let Some(map) = value.as_object_mut() {
                map.insert("kind".into(), "Status".into());
                map.insert("apiVersion".into(), "v1".into());
                map.entry("metadata").or_insert_with(|| json!({}));
            }
            value
        }
        Version::V1beta1 => codec::status_to_v1beta1(&error.0, resource),
    };
    json_response(error.code(), &body)
}

/// A JSON response with the given status code.
pub fn json_response(code: u16, body: &Value) -> Response {
    json_bytes_response(code, serde_json::to_vec(body).unwrap_or_default())
}

/// A JSON body already encoded.
pub fn json_bytes_response(code: u16, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() =
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// [`error_response`] in the media type the client prefers.
pub fn error_response_for(
    version: Version,
    resource: Option<&ResourceKind>,
    error: &ApiError,
    accept: &str,
) -> Response {
    let response = error_response(version, resource, error);
    if version != Version::V1 || !protobuf::wants_protobuf(accept) {
        return response;
    }
    let mut value = serde_json::to_value(&*error.0).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), "Status".into());
        map.insert("apiVersion".into(), "v1".into());
    }
    respond(error.code(), &value, accept, version)
}

/// Whether [`respond`] answers a v1 object in JSON (neither protobuf nor
/// YAML), so that bytes already encoded can be sent as they are.
pub fn wants_plain_json(accept: &str) -> bool {
    !protobuf::wants_protobuf(accept) && !wants_yaml(accept)
}

/// A response in the media type the client prefers: protobuf (v1 only),
/// YAML or JSON. An object with no protobuf message (none of ours lacks
/// one) goes as JSON, which every Kubernetes client also accepts.
pub fn respond(code: u16, value: &Value, accept: &str, version: Version) -> Response {
    if version == Version::V1 && protobuf::wants_protobuf(accept) {
        match protobuf::encode(value) {
            Ok(bytes) => {
                let mut response = Response::new(Body::from(bytes));
                *response.status_mut() =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                response.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_static(protobuf::MEDIA_TYPE),
                );
                return response;
            }
            Err(error) => tracing::debug!(%error, "answering in JSON"),
        }
    }
    if wants_yaml(accept) {
        yaml_response(code, value)
    } else {
        json_response(code, value)
    }
}

fn yaml_response(code: u16, body: &Value) -> Response {
    match api_types::yaml::to_string(body) {
        Ok(text) => {
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/yaml"));
            response
        }
        Err(_) => json_response(code, body),
    }
}

/// The entry point for every `/api/v1...`, `/api/v1beta1...` and
/// `/apis/{group}/{version}/...` path that is not discovery.
pub async fn handle(
    State(state): State<Arc<ApiState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<Params>,
    body: Body,
) -> Response {
    let started = tokio::time::Instant::now();
    let target = match path::parse(uri.path()) {
        Ok(Some(target)) => target,
        Ok(None) => return crate::discovery::not_found(uri.path()),
        Err(error) => return error_response(Version::V1, None, &error),
    };
    let verb = verb_of(&method, &target, &params);
    let resource = target.resource;
    let version = target.version;
    let is_watch = verb == "watch";
    let response = match routes::dispatch(&state, &method, &target, &headers, &params, body).await {
        Ok(response) => response,
        Err(error) => {
            let accept = headers.get("accept").and_then(|v| v.to_str().ok());
            error_response_for(version, Some(resource), &error, accept.unwrap_or(""))
        }
    };
    if !is_watch {
        state.metrics.observe(
            verb,
            resource.plural,
            target.subresource.as_deref().unwrap_or(""),
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    response
}

/// The Kubernetes verb of a request, for metrics and logs.
fn verb_of(method: &Method, target: &Target, params: &Params) -> &'static str {
    let watching =
        target.watch_prefix || params.get("watch").is_some_and(|w| w == "true" || w == "1");
    match *method {
        Method::GET if watching => "watch",
        Method::GET if target.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if target.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// The namespace a request acts in. v1beta1 names it with `?namespace=`:
/// lists and watches without it span all namespaces, other verbs default
/// to `default`.
fn namespace_of(target: &Target, params: &Params, method: &Method) -> Option<String> {
    if !target.resource.namespaced {
        return None;
    }
    match target.version {
        Version::V1 => target.namespace.clone(),
        Version::V1beta1 => {
            let given = params.get("namespace").filter(|n| !n.is_empty()).cloned();
            let collection_read =
                *method == Method::GET && target.name.is_none() && !target.bindings;
            if given.is_none() && !collection_read {
                Some("default".into())
            } else {
                given
            }
        }
    }
}

fn list_query(target: &Target, params: &Params) -> Result<ListQuery> {
    let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(e.to_string());
    let labels = params
        .get("labelSelector")
        .or_else(|| params.get("labels"))
        .map(|s| Selector::parse(s))
        .transpose()
        .map_err(|e| bad(&e))?
        .unwrap_or_default();
    let fields = match (params.get("fieldSelector"), params.get("fields")) {
        (Some(s), _) => FieldSelector::parse(s).map_err(|e| bad(&e))?,
        (None, Some(s)) if target.version == Version::V1beta1 => {
            FieldSelector::from_v1beta1(target.resource, s).map_err(|e| bad(&e))?
        }
        (None, Some(s)) => FieldSelector::parse(s).map_err(|e| bad(&e))?,
        (None, None) => FieldSelector::default(),
    };
    fields
        .check_supported(target.resource)
        .map_err(|e| bad(&e))?;
    let limit = params
        .get("limit")
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("limit {l:?} is not a number")))
        })
        .transpose()?;
    Ok(ListQuery {
        labels,
        fields,
        limit,
        continue_token: params.get("continue").filter(|c| !c.is_empty()).cloned(),
        resource_version: params.get("resourceVersion").cloned(),
    })
}

/// Whether the request is a server-side apply (`application/apply-patch+yaml`).
fn is_apply(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/apply-patch+yaml")
        })
}

/// The field manager of a write: `fieldManager`, else (not for an apply,
/// which must name one) the user agent's first token, as Kubernetes
/// defaults it (`kubectl/v1.32.0 (linux/amd64) ...` → `kubectl`).
fn field_manager(params: &Params, headers: &HeaderMap, apply: bool) -> Result<Option<String>> {
    let given = params
        .get("fieldManager")
        .map(String::as_str)
        .filter(|m| !m.is_empty());
    let manager = match given {
        Some(manager) => manager.to_string(),
        None if apply => {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            ))
        }
        None => {
            let agent = headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let prefix = agent.split('/').next().unwrap_or("").trim();
            if prefix.is_empty() {
                return Ok(None);
            }
            prefix.chars().take(128).collect()
        }
    };
    if manager.len() > 128 || manager.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "fieldManager: Invalid value: must be at most 128 printable characters",
        ));
    }
    Ok(Some(manager))
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<AcceptedBody> {
    body::read(headers, body)
        .await?
        .ok_or_else(|| ApiError::bad_request("the request has no body"))
}

async fn read_optional_body(headers: &HeaderMap, body: Body) -> Result<Option<AcceptedBody>> {
    body::read(headers, body).await
}

/// The v1 JSON of a request body in the target's version; repeated keys
/// are refused or warned about as `fieldValidation` says.
fn decode_object(target: &Target, body: AcceptedBody, options: &WriteOptions) -> Result<Value> {
    options.duplicate_fields(&body.duplicates)?;
    match target.version {
        Version::V1 => Ok(body.value),
        Version::V1beta1 => codec::object_from_v1beta1(target.resource, body.value),
    }
}

fn delete_options(params: &Params, body: Option<&AcceptedBody>) -> Result<DeleteOptions> {
    let mut options = DeleteOptions::default();
    let body_dry_run = match body.and_then(|b| b.value.get("dryRun")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(stages)) => stages
            .iter()
            .map(|stage| {
                stage.as_str().ok_or_else(|| {
                    ApiError::bad_request(format!("dryRun must be a list of strings, not {stage}"))
                })
            })
            .collect::<Result<Vec<_>>>()?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun must be a list of strings, not {other}"
            )))
        }
    };
    options.dry_run = crate::registry::parse_dry_run(
        body_dry_run
            .into_iter()
            .chain(params.get("dryRun").map(String::as_str)),
    )?;
    if let Some(body) = body {
        let value = &body.value;
        options.grace_period_seconds = value.get("gracePeriodSeconds").and_then(Value::as_i64);
        options.precondition_uid = value
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        options.precondition_resource_version = value
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(grace) = params.get("gracePeriodSeconds") {
        options.grace_period_seconds = Some(grace.parse().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds {grace:?} is not a number"))
        })?);
    }
    let body_policy = body.and_then(|b| b.value.get("propagationPolicy"));
    let policy = match params.get("propagationPolicy") {
        Some(text) => Some(text.to_string()),
        None => match body_policy {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Null) | None => None,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy must be a string, not {other}"
                )))
            }
        },
    };
    options.propagation = match policy.as_deref() {
        None => None,
        Some(text) => Some(Propagation::parse(text).ok_or_else(|| {
            ApiError::invalid(
                "DeleteOptions",
                "",
                &[FieldError::not_supported(
                    "propagationPolicy",
                    text,
                    &["Orphan", "Background", "Foreground"],
                )],
            )
        })?),
    };
    // The older spelling: orphanDependents=true is Orphan, false Background.
    let orphan = match params.get("orphanDependents") {
        Some(text) => Some(text == "true"),
        None => body
            .and_then(|b| b.value.get("orphanDependents"))
            .and_then(Value::as_bool),
    };
    if let Some(orphan) = orphan {
        if options.propagation.is_some() {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                &[FieldError::invalid(
                    "orphanDependents",
                    orphan,
                    "orphanDependents and propagationPolicy cannot both be set",
                )],
            ));
        }
        options.propagation = Some(if orphan {
            Propagation::Orphan
        } else {
            Propagation::Background
        });
    }
    Ok(options)
}

/// `POST pods/{name}/eviction`: the pod's graceful delete with the
/// Eviction's `deleteOptions`, answered `201` with a Success Status as
/// Kubernetes does. There are no PodDisruptionBudgets here, so nothing
/// ever refuses an eviction (Kubernetes would answer 429 then).
async fn evict(
    registry: &dyn crate::registry::Rest,
    namespace: Option<&str>,
    name: &str,
    params: &Params,
    body: AcceptedBody,
) -> Result<Value> {
    let kind = body.value.get("kind").and_then(Value::as_str);
    if kind.is_some_and(|k| k != "Eviction") {
        return Err(ApiError::bad_request(format!(
            "the body of an eviction must be an Eviction, not {}",
            kind.unwrap_or_default()
        )));
    }
    let named = body.value.pointer("/metadata/name").and_then(Value::as_str);
    if named.is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let options = body
        .value
        .get("deleteOptions")
        .filter(|o| !o.is_null())
        .map(|value| AcceptedBody {
            value: value.clone(),
            duplicates: Vec::new(),
        });
    let options = delete_options(params, options.as_ref())?;
    registry.delete(namespace, name, &options).await?;
    let mut status = serde_json::to_value(api_types::status::success("pods", name))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    status["kind"] = "Status".into();
    status["apiVersion"] = "v1".into();
    status["code"] = 201.into();
    Ok(status)
}

fn scale_response(rc: &Value, accept: &str) -> Result<Response> {
    let rc: api_types::v1::ReplicationController =
        serde_json::from_value(rc.clone()).map_err(|e| {
            ApiError::internal(format!("stored replication controller is corrupt: {e}"))
        })?;
    let scale = crate::registry::replication_controllers::scale_of(&rc);
    let mut value = serde_json::to_value(scale).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        map.insert("kind".into(), "Scale".into());
        map.insert("apiVersion".into(), "autoscaling/v1".into());
    }
    Ok(respond(200, &value, accept, Version::V1))
}

async fn bind(
    state: &Arc<ApiState>,
    target: &Target,
    namespace: &str,
    pod: Option<&str>,
    body: AcceptedBody,
    dry_run: bool,
) -> Result<Response> {
    let (pod_name, node) = match target.version {
        Version::V1 => {
            let name = body
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let node = body
                .value
                .pointer("/target/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            (pod.map(str::to_string).or(name), node)
        }
        Version::V1beta1 => (
            body.value
                .get("podID")
                .and_then(Value::as_str)
                .map(str::to_string),
            body.value
                .get("host")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
    };
    let pod_name = pod_name.ok_or_else(|| {
        ApiError::invalid(
            "Binding",
            "",
            &[api_types::FieldError::required(
                "metadata.name",
                "the pod to bind",
            )],
        )
    })?;
    let guess = state
        .registry(&api_types::kinds::PODS)?
        .latest(Some(namespace), &pod_name);
    let status = crate::registry::pods::bind(
        state.storage.as_ref(),
        namespace,
        &pod_name,
        &node,
        guess,
        dry_run,
    )
    .await?;
    Ok(match target.version {
        Version::V1 => json_response(201, &status),
        Version::V1beta1 => json_response(
            200,
            &codec::status_to_v1beta1(&api_types::status::success("binding", &pod_name), None),
        ),
    })
}

/// One line of a JSON watch: `{"type":KIND,"object":OBJECT}` and a newline,
/// around an object already encoded (once for all its watchers).
fn json_watch_line(kind: &str, object: &[u8]) -> bytes::Bytes {
    // `kind` is one of the fixed words ADDED, MODIFIED, DELETED: nothing
    // in it needs escaping.
    let mut line = Vec::with_capacity(object.len() + kind.len() + 24);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(object);
    line.extend_from_slice(b"}\n");
    bytes::Bytes::from(line)
}

async fn watch(
    state: &Arc<ApiState>,
    target: &Target,
    namespace: Option<&str>,
    query: &ListQuery,
    params: &Params,
    accept: &str,
) -> Result<Response> {
    let registry = state.registry(target.resource)?;
    // Like Kubernetes, a too-old resourceVersion is reported inside the
    // stream as an ERROR event with a 410 Status, which clients relist on.
    let stream = match registry.watch(namespace, query).await {
        Ok(stream) => stream,
        Err(e) if e.code() == 410 => {
            futures::stream::iter([crate::registry::watch_error(e)]).boxed()
        }
        Err(e) => return Err(e),
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or_else(|| state.limits.watch_timeout(), Duration::from_secs);
    let version = target.version;
    let resource = target.resource;
    let as_table = version == Version::V1 && wants_table(accept);
    let as_protobuf = version == Version::V1 && !as_table && protobuf::wants_protobuf(accept);
    let params = params.clone();
    let mut shutdown = state.shutdown.clone();
    let guard = state.metrics.watch_started(resource.plural);
    let deadline = tokio::time::sleep(timeout);
    let ended = async move {
        tokio::select! {
            () = deadline => {},
            _ = shutdown.wait_for(|stopping| *stopping) => {},
        }
    };
    let plain_json = version == Version::V1 && !as_table && !as_protobuf;
    let lines = stream.take_until(ended).map(move |event| {
        let _watching = &guard;
        if plain_json && event.kind != "ERROR" {
            let object = event.encoded.clone().unwrap_or_else(|| {
                bytes::Bytes::from(serde_json::to_vec(&*event.object()).unwrap_or_default())
            });
            return Ok(json_watch_line(event.kind, &object));
        }
        let tree = event.object();
        let object = if event.kind == "ERROR" {
            match version {
                Version::V1 => {
                    let mut status = Value::clone(&tree);
                    status["kind"] = "Status".into();
                    status["apiVersion"] = "v1".into();
                    status
                }
                Version::V1beta1 => {
                    serde_json::from_value::<api_types::v1::Status>(Value::clone(&tree))
                        .map(|s| codec::status_to_v1beta1(&s, Some(resource)))
                        .unwrap_or_else(|_| Value::clone(&tree))
                }
            }
        } else if as_table {
            let rv = tree
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            table::table_for(resource, std::slice::from_ref(&*tree), &rv, &params)
        } else {
            match version {
                Version::V1 => Arc::unwrap_or_clone(tree),
                Version::V1beta1 => codec::object_to_v1beta1(resource, &tree)
                    .unwrap_or_else(|e| serde_json::to_value(&*e.0).unwrap_or_default()),
            }
        };
        if as_protobuf {
            let mut object = object;
            if let Some(map) = object.as_object_mut() {
                map.entry("apiVersion")
                    .or_insert_with(|| resource.api_version().into());
                map.entry("kind").or_insert_with(|| resource.kind.into());
            }
            let frame = protobuf::watch_frame(event.kind, &object).unwrap_or_else(|error| {
                // Every served kind has a message: this is a defect.
                tracing::warn!(%error, "watch event left out: no protobuf form");
                Vec::new()
            });
            return Ok(bytes::Bytes::from(frame));
        }
        let mut line = serde_json::to_vec(&json!({ "type": event.kind, "object": object }))
            .unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line))
    });
    let mut response = Response::new(Body::from_stream(lines));
    let content_type = if as_protobuf {
        protobuf::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    Ok(response.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    #[test]
    fn a_watch_line_around_an_encoded_object_is_the_event_as_json() {
        let object = json!({"kind": "Pod", "metadata": {"name": "a \"quoted\" name"}});
        let encoded = serde_json::to_vec(&object).unwrap();
        let line = super::json_watch_line("MODIFIED", &encoded);
        assert!(line.ends_with(b"}\n"));
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, json!({"type": "MODIFIED", "object": object}));
    }
}
