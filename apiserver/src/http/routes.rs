//! The route table: which handler serves a request, by its Kubernetes
//! verb, whether it names an object, and its subresource. A new
//! subresource joins with one line in [`ROUTES`] and its handler.

use std::sync::Arc;

use api_types::fields::FieldSelector;
use api_types::status::Reason;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::body::{self, wants_table, wants_yaml};
use super::path::{Target, Version};
use super::{
    bind, decode_object, delete_options, evict, field_manager, is_apply, json_bytes_response,
    json_response, list_query, namespace_of, read_body, read_optional_body, respond,
    scale_response, table, verb_of, wants_plain_json, Params,
};
use crate::codec;
use crate::error::{ApiError, Result};
use crate::protobuf;
use crate::registry::{FieldValidation, Patch, Rest, Subresource, WriteOptions};
use crate::server::ApiState;

/// One request, parsed once for whichever handler serves it.
pub(super) struct Request<'a> {
    state: &'a Arc<ApiState>,
    target: &'a Target,
    headers: &'a HeaderMap,
    params: &'a Params,
    registry: &'a Arc<dyn Rest>,
    namespace: Option<String>,
    accept: &'a str,
    dry_run: bool,
    options: WriteOptions,
}

impl Request<'_> {
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name; routes that match [`Name::Named`] only.
    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    fn version(&self) -> Version {
        self.target.version
    }

    /// `value` in the client's version and media type, with the write's
    /// warnings as `Warning` headers.
    fn render(&self, code: u16, value: Value) -> Result<Response> {
        let value = match self.version() {
            Version::V1 => value,
            Version::V1beta1 => codec::object_to_v1beta1(self.target.resource, &value)?,
        };
        Ok(self.with_warnings(respond(code, &value, self.accept, self.version())))
    }

    /// `response` with the write's warnings as `Warning` headers.
    fn with_warnings(&self, mut response: Response) -> Response {
        for warning in self.options.warnings() {
            // RFC 7234 warning, as Kubernetes sends: 299 - "text".
            let text = format!("299 - {:?}", warning.replace('"', "'"));
            if let Ok(header) = HeaderValue::from_str(&text) {
                response.headers_mut().append("warning", header);
            }
        }
        response
    }
}

/// Whether a route wants an object's name in the path.
#[derive(Clone, Copy)]
enum Name {
    /// `.../pods`.
    Collection,
    /// `.../pods/{name}`.
    Named,
    /// Either.
    Any,
}

/// The subresource a route serves.
#[derive(Clone, Copy)]
enum Sub {
    /// None: the resource itself.
    Main,
    /// This one.
    Is(&'static str),
    /// Whichever (watches and lists ignore it).
    Any,
}

type Handler = for<'r> fn(&'r Request<'r>, Body) -> BoxFuture<'r, Result<Response>>;

/// One line of the table.
struct Route {
    verb: &'static str,
    name: Name,
    sub: Sub,
    /// A further condition (the API version, the `bindings` path).
    when: Option<fn(&Request<'_>) -> bool>,
    handler: Handler,
}

impl Route {
    fn matches(&self, verb: &str, request: &Request<'_>) -> bool {
        let target = request.target;
        let name = match self.name {
            Name::Collection => target.name.is_none(),
            Name::Named => target.name.is_some(),
            Name::Any => true,
        };
        let sub = match self.sub {
            Sub::Main => target.subresource.is_none(),
            Sub::Is(sub) => target.subresource.as_deref() == Some(sub),
            Sub::Any => true,
        };
        self.verb == verb && name && sub && self.when.is_none_or(|when| when(request))
    }
}

const fn route(verb: &'static str, name: Name, sub: Sub, handler: Handler) -> Route {
    Route {
        verb,
        name,
        sub,
        when: None,
        handler,
    }
}

const fn route_if(
    verb: &'static str,
    name: Name,
    sub: Sub,
    when: fn(&Request<'_>) -> bool,
    handler: Handler,
) -> Route {
    Route {
        verb,
        name,
        sub,
        when: Some(when),
        handler,
    }
}

/// A route's handler: `h!(get)` for `async fn get(&Request, Body)`.
macro_rules! h {
    ($handler:ident) => {
        |r, b| Box::pin($handler(r, b))
    };
}

/// Every route, the first that matches serving; a request none matches is
/// a 405.
// One line a route reads best as a table.
#[rustfmt::skip]
static ROUTES: &[Route] = &[
    route("watch", Name::Any, Sub::Any, h!(watch)),
    route("list", Name::Collection, Sub::Any, h!(list)),
    route("get", Name::Named, Sub::Main, h!(get)),
    route("get", Name::Named, Sub::Is("status"), h!(get_status)),
    route("get", Name::Named, Sub::Is("log"), h!(get_log)),
    route("get", Name::Named, Sub::Is("scale"), h!(get_scale)),
    route_if("create", Name::Collection, Sub::Main, bindings, h!(create_binding)),
    route("create", Name::Named, Sub::Is("binding"), h!(create_binding)),
    route_if("create", Name::Named, Sub::Is("eviction"), v1, h!(create_eviction)),
    route("create", Name::Collection, Sub::Main, h!(create)),
    route("update", Name::Named, Sub::Main, h!(update)),
    route("update", Name::Named, Sub::Is("status"), h!(update)),
    route("update", Name::Named, Sub::Is("finalize"), h!(update_finalize)),
    route("update", Name::Named, Sub::Is("scale"), h!(update_scale)),
    route("patch", Name::Named, Sub::Main, h!(patch)),
    route("patch", Name::Named, Sub::Is("status"), h!(patch)),
    route("patch", Name::Named, Sub::Is("scale"), h!(patch_scale)),
    route("delete", Name::Named, Sub::Main, h!(delete)),
    route_if("deletecollection", Name::Collection, Sub::Main, across_namespaces, h!(refuse)),
    route("deletecollection", Name::Collection, Sub::Main, h!(delete_collection)),
];

/// `POST .../bindings`, the collection form of a pod's binding.
fn bindings(r: &Request<'_>) -> bool {
    r.target.bindings
}

/// Served in v1 only (evictions).
fn v1(r: &Request<'_>) -> bool {
    r.version() == Version::V1
}

/// Serves one API request through the first route that matches it.
pub(super) async fn dispatch(
    state: &Arc<ApiState>,
    method: &Method,
    target: &Target,
    headers: &HeaderMap,
    params: &Params,
    body: Body,
) -> Result<Response> {
    let registry = state.registry(target.resource)?;
    let namespace = namespace_of(target, params, method);
    let verb = verb_of(method, target, params);
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let dry_run = crate::registry::parse_dry_run(params.get("dryRun").map(String::as_str))?;
    let mut options = WriteOptions::new(FieldValidation::parse(
        params.get("fieldValidation").map(String::as_str),
    )?)
    .with_dry_run(dry_run);
    options.apply = *method == Method::PATCH && is_apply(headers);
    options.field_manager = field_manager(params, headers, options.apply)?;
    let request = Request {
        state,
        target,
        headers,
        params,
        registry,
        namespace,
        accept,
        dry_run,
        options,
    };
    match ROUTES.iter().find(|route| route.matches(verb, &request)) {
        Some(route) => (route.handler)(&request, body).await,
        None => Err(ApiError::new(
            Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource ({method} {}{})",
                target.resource.plural,
                target
                    .subresource
                    .as_deref()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default()
            ),
        )),
    }
}

async fn watch(r: &Request<'_>, _body: Body) -> Result<Response> {
    let mut query = list_query(r.target, r.params)?;
    if let Some(name) = &r.target.name {
        query.fields = FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    super::watch(r.state, r.target, r.ns(), &query, r.params, r.accept).await
}

async fn list(r: &Request<'_>, _body: Body) -> Result<Response> {
    let resource = r.target.resource;
    let query = list_query(r.target, r.params)?;
    let plain_json = r.version() == Version::V1
        && !wants_table(r.accept)
        && !wants_yaml(r.accept)
        && !protobuf::wants_protobuf(r.accept);
    if plain_json {
        if let Some(body) = r.registry.list_encoded(r.ns(), &query).await? {
            return Ok(json_bytes_response(200, body));
        }
    }
    let list = r.registry.list(r.ns(), &query).await?;
    if r.version() == Version::V1 && wants_table(r.accept) {
        let table = table::table_for(resource, &list.items, &list.resource_version, r.params);
        return Ok(json_response(200, &table));
    }
    let value = match r.version() {
        Version::V1 => {
            let mut metadata = json!({ "resourceVersion": list.resource_version });
            if let Some(token) = &list.continue_token {
                metadata["continue"] = Value::String(token.clone());
            }
            if let Some(remaining) = list.remaining.filter(|r| *r > 0) {
                metadata["remainingItemCount"] = json!(remaining);
            }
            json!({
                "kind": resource.list_kind(),
                "apiVersion": resource.api_version(),
                "metadata": metadata,
                "items": list.items,
            })
        }
        Version::V1beta1 => codec::list_to_v1beta1(resource, &list.items, &list.resource_version)?,
    };
    Ok(respond(200, &value, r.accept, r.version()))
}

async fn get(r: &Request<'_>, _body: Body) -> Result<Response> {
    let value = r.registry.get(r.ns(), r.name()).await?;
    if r.version() == Version::V1 && wants_table(r.accept) {
        let rv = value
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        return Ok(json_response(
            200,
            &table::table_for(r.target.resource, &[value], &rv, r.params),
        ));
    }
    r.render(200, value)
}

async fn get_status(r: &Request<'_>, _body: Body) -> Result<Response> {
    r.render(200, r.registry.get(r.ns(), r.name()).await?)
}

async fn get_log(r: &Request<'_>, _body: Body) -> Result<Response> {
    crate::logs::pod_log(
        r.state.storage.as_ref(),
        &r.state.kubelet,
        r.ns().unwrap_or("default"),
        r.name(),
        r.params,
    )
    .await
}

async fn get_scale(r: &Request<'_>, _body: Body) -> Result<Response> {
    let value = r.registry.get(r.ns(), r.name()).await?;
    scale_response(&value, r.accept)
}

/// `POST .../bindings` (the pod named in the body) and
/// `POST .../pods/{name}/binding`.
async fn create_binding(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_body(r.headers, body).await?;
    let pod = r.target.name.as_deref();
    bind(
        r.state,
        r.target,
        r.ns().unwrap_or("default"),
        pod,
        body,
        r.dry_run,
    )
    .await
}

async fn create_eviction(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_body(r.headers, body).await?;
    let status = evict(r.registry.as_ref(), r.ns(), r.name(), r.params, body).await?;
    Ok(respond(201, &status, r.accept, r.version()))
}

async fn create(r: &Request<'_>, body: Body) -> Result<Response> {
    let bytes = body::read_bytes(body).await?;
    // A small v1 JSON body is decoded once, straight into its type.
    let small_json = match r.version() {
        Version::V1 => body::small_json(r.headers, &bytes)?,
        Version::V1beta1 => None,
    };
    let created = match small_json {
        Some((object, duplicates)) => {
            r.options.duplicate_fields(&duplicates)?;
            r.registry.create_json(r.ns(), &object, &r.options).await?
        }
        None => {
            let body = body::decode_read(r.headers, bytes)
                .await?
                .ok_or_else(|| ApiError::bad_request("the request has no body"))?;
            let value = decode_object(r.target, body, &r.options)?;
            r.registry.create_encoded(r.ns(), value, &r.options).await?
        }
    };
    // v0.5 answered creates with 200; v1 clients expect 201.
    if r.version() == Version::V1 && wants_plain_json(r.accept) {
        return Ok(r.with_warnings(json_bytes_response(201, created.0)));
    }
    r.render(
        if r.version() == Version::V1 { 201 } else { 200 },
        created.into_value()?,
    )
}

/// `PUT` of an object or its `/status`.
async fn update(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_body(r.headers, body).await?;
    let value = decode_object(r.target, body, &r.options)?;
    let subresource = if r.target.subresource.is_some() {
        Subresource::Status
    } else {
        Subresource::Main
    };
    let (updated, created) = r
        .registry
        .update(r.ns(), r.name(), value, subresource, &r.options)
        .await?;
    r.render(
        if created && r.version() == Version::V1 {
            201
        } else {
            200
        },
        updated,
    )
}

/// A namespace's spec.finalizers (the namespace controller removes
/// `kubernetes` here once the namespace is empty).
async fn update_finalize(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_body(r.headers, body).await?;
    let value = decode_object(r.target, body, &r.options)?;
    let (updated, _) = r
        .registry
        .update(r.ns(), r.name(), value, Subresource::Finalize, &r.options)
        .await?;
    r.render(200, updated)
}

async fn update_scale(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_body(r.headers, body).await?;
    let replicas = body
        .value
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("Scale body must set spec.replicas"))?;
    let rv = body.value.pointer("/metadata/resourceVersion").cloned();
    let mut patch = json!({ "spec": { "replicas": replicas } });
    if let Some(rv) = rv {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    let value = r
        .registry
        .patch(
            r.ns(),
            r.name(),
            &Patch::Merge(patch),
            Subresource::Main,
            &r.options,
        )
        .await?;
    scale_response(&value, r.accept)
}

/// The patch a `PATCH` carries, by its content type.
async fn read_patch(r: &Request<'_>, body: Body) -> Result<Patch> {
    let content_type = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = read_body(r.headers, body).await?;
    Ok(match content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => Patch::Merge(body.value),
        "application/json-patch+json" => {
            let ops = body.value.as_array().map_or(0, Vec::len);
            if ops > api_types::patch::MAX_JSON_PATCH_OPERATIONS {
                return Err(ApiError::new(
                    Reason::RequestEntityTooLarge,
                    format!(
                        "the allowed maximum operations in a JSON patch is {}, got {ops}",
                        api_types::patch::MAX_JSON_PATCH_OPERATIONS
                    ),
                ));
            }
            Patch::Json(body.value)
        }
        "application/strategic-merge-patch+json" => Patch::Strategic(body.value),
        "application/apply-patch+yaml"
            if r.target.subresource.is_none() && r.version() == Version::V1 =>
        {
            Patch::Apply {
                config: body.value,
                force: r.params.get("force").map(String::as_str) == Some("true"),
            }
        }
        "application/apply-patch+yaml" => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "server-side apply is served for the v1 API's objects, not their subresources",
            ))
        }
        other => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!("the body of the request was in an unknown format ({other:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json"),
            ))
        }
    })
}

/// `PATCH` of an object or its `/status`.
async fn patch(r: &Request<'_>, body: Body) -> Result<Response> {
    let patch = read_patch(r, body).await?;
    let subresource = if r.target.subresource.is_some() {
        Subresource::Status
    } else {
        Subresource::Main
    };
    let patched = r
        .registry
        .patch(r.ns(), r.name(), &patch, subresource, &r.options)
        .await?;
    r.render(200, patched)
}

async fn patch_scale(r: &Request<'_>, body: Body) -> Result<Response> {
    let patch = match read_patch(r, body).await? {
        Patch::Json(_) => {
            return Err(ApiError::new(
                Reason::UnsupportedMediaType,
                "json patch of scale is not supported; use a merge patch of spec.replicas",
            ))
        }
        Patch::Merge(p) | Patch::Strategic(p) => p,
        Patch::Apply { .. } => return Err(ApiError::internal("apply of scale")),
    };
    let replicas = patch
        .pointer("/spec/replicas")
        .cloned()
        .unwrap_or(Value::Null);
    let value = r
        .registry
        .patch(
            r.ns(),
            r.name(),
            &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
            Subresource::Main,
            &r.options,
        )
        .await?;
    scale_response(&value, r.accept)
}

async fn delete(r: &Request<'_>, body: Body) -> Result<Response> {
    let body = read_optional_body(r.headers, body).await?;
    let options = delete_options(r.params, body.as_ref())?;
    let deleted = r.registry.delete(r.ns(), r.name(), &options).await?;
    match r.version() {
        Version::V1 => r.render(200, deleted),
        Version::V1beta1 => Ok(json_response(
            200,
            &codec::status_to_v1beta1(
                &api_types::status::success(r.target.resource.singular, r.name()),
                Some(r.target.resource),
            ),
        )),
    }
}

/// Kubernetes serves no deletecollection of a namespaced resource across
/// namespaces: `DELETE /api/v1/pods` deleted every pod.
fn across_namespaces(r: &Request<'_>) -> bool {
    r.target.resource.namespaced && r.ns().is_none()
}

async fn refuse(r: &Request<'_>, _body: Body) -> Result<Response> {
    let plural = r.target.resource.plural;
    Err(ApiError::new(
        Reason::MethodNotAllowed,
        format!(
            "the server does not allow this method on the requested resource (DELETE {plural}): {plural} are deleted one namespace at a time (/api/v1/namespaces/{{namespace}}/{plural})"
        ),
    ))
}

async fn delete_collection(r: &Request<'_>, body: Body) -> Result<Response> {
    let resource = r.target.resource;
    let body = read_optional_body(r.headers, body).await?;
    let options = delete_options(r.params, body.as_ref())?;
    let query = list_query(r.target, r.params)?;
    let list = r.registry.list(r.ns(), &query).await?;
    let mut deleted = Vec::new();
    for item in list.items {
        let name = item
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let item_ns = item.pointer("/metadata/namespace").and_then(Value::as_str);
        match r.registry.delete(item_ns.or(r.ns()), name, &options).await {
            Ok(value) => deleted.push(value),
            Err(e) if e.code() == 404 => {}
            Err(e) => return Err(e),
        }
    }
    r.render(
        200,
        json!({ "kind": resource.list_kind(), "apiVersion": resource.api_version(), "metadata": {}, "items": deleted }),
    )
}
