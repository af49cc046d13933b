//! `authorization.k8s.io/v1` reviews: `SelfSubjectAccessReview` (what
//! `kubectl auth can-i` posts), `SelfSubjectRulesReview` (`can-i --list`)
//! and `SubjectAccessReview` (asked on someone else's behalf, as a
//! kubelet's webhook authorization does). Create-only; nothing is stored.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::{Attributes, Authorizer};
use crate::auth::User;
use crate::error::ApiError;
use crate::http::body::AcceptedBody;
use crate::http::path::Version;
use crate::http::{error_response_for, respond};

/// The group-version the reviews are served under.
pub const GROUP_VERSION: &str = "authorization.k8s.io/v1";

/// The review resources, as discovery lists them (plural, kind).
pub const RESOURCES: [(&str, &str); 3] = [
    ("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    ("selfsubjectrulesreviews", "SelfSubjectRulesReview"),
    ("subjectaccessreviews", "SubjectAccessReview"),
];

type Shared = Option<Arc<Authorizer>>;

/// The review routes, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(authorizer: Shared) -> Router<S> {
    let base = format!("/apis/{GROUP_VERSION}");
    Router::new()
        .route(
            &format!("{base}/selfsubjectaccessreviews"),
            post(self_access),
        )
        .route(&format!("{base}/selfsubjectrulesreviews"), post(self_rules))
        .route(
            &format!("{base}/subjectaccessreviews"),
            post(subject_access),
        )
        .with_state(authorizer)
}

/// The review in a body read as any create's (JSON, YAML or protobuf).
pub(crate) fn parse(
    body: Result<Option<AcceptedBody>, ApiError>,
    kind: &str,
) -> Result<Value, ApiError> {
    let value = body?
        .map(|b| b.value)
        .ok_or_else(|| ApiError::bad_request(format!("a {kind} body is required")))?;
    if value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != kind)
    {
        return Err(ApiError::bad_request(format!("expected kind {kind}")));
    }
    Ok(value)
}

/// 201 with the answered review, in the media type the client prefers.
pub(crate) fn answer(headers: &HeaderMap, result: Result<Value, ApiError>) -> Response {
    let accept = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match result {
        Ok(value) => respond(201, &value, accept, Version::V1),
        Err(error) => error_response_for(Version::V1, None, &error, accept),
    }
}

/// The attributes a review's spec asks about.
fn spec_attributes(spec: &Value) -> Result<Attributes, ApiError> {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        return Ok(Attributes {
            verb: text(r, "verb").unwrap_or_default(),
            api_group: text(r, "group").unwrap_or_default(),
            resource: Some(text(r, "resource").unwrap_or_default()),
            subresource: text(r, "subresource"),
            namespace: text(r, "namespace"),
            name: text(r, "name"),
            path: String::new(),
            field_selector: r
                .pointer("/fieldSelector/rawSelector")
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|n| n.is_object()) {
        return Ok(Attributes {
            verb: text(n, "verb").unwrap_or_default(),
            path: text(n, "path").unwrap_or_default(),
            ..Attributes::default()
        });
    }
    Err(ApiError::invalid(
        "SelfSubjectAccessReview",
        "",
        &[api_types::FieldError::required(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )],
    ))
}

fn decide(authorizer: &Shared, user: Option<&User>, attributes: &Attributes) -> Value {
    let allowed = match (authorizer, user) {
        (Some(authorizer), Some(user)) => authorizer.allows(user, attributes),
        // No authentication, so no authorization: everything is allowed.
        _ => true,
    };
    if allowed {
        json!({ "allowed": true })
    } else {
        json!({ "allowed": false })
    }
}

fn reviewed(mut review: Value, kind: &str, status: Value) -> Value {
    review["apiVersion"] = GROUP_VERSION.into();
    review["kind"] = kind.into();
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    review
}

async fn self_access(
    State(authorizer): State<Shared>,
    user: Option<Extension<User>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const KIND: &str = "SelfSubjectAccessReview";
    let body = crate::http::body::read(&headers, body).await;
    answer(
        &headers,
        (|| {
            let review = parse(body, KIND)?;
            let attributes = spec_attributes(&review["spec"])?;
            let status = decide(&authorizer, user.as_deref(), &attributes);
            Ok(reviewed(review, KIND, status))
        })(),
    )
}

async fn subject_access(
    State(authorizer): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const KIND: &str = "SubjectAccessReview";
    let body = crate::http::body::read(&headers, body).await;
    answer(
        &headers,
        (|| {
            let review = parse(body, KIND)?;
            let spec = &review["spec"];
            let attributes = spec_attributes(spec)?;
            let name = spec["user"].as_str().unwrap_or_default().to_string();
            let groups: Vec<String> = spec["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect();
            if name.is_empty() && groups.is_empty() {
                return Err(ApiError::invalid(
                    KIND,
                    "",
                    &[api_types::FieldError::invalid(
                        "spec.user",
                        "",
                        "at least one of user or group must be specified",
                    )],
                ));
            }
            let subject = User {
                name,
                uid: spec["uid"].as_str().unwrap_or_default().to_string(),
                groups,
            };
            // Without an authorizer nothing would be refused: say so.
            let status = match &authorizer {
                Some(_) => decide(&authorizer, Some(&subject), &attributes),
                None => json!({ "allowed": true }),
            };
            Ok(reviewed(review, KIND, status))
        })(),
    )
}

async fn self_rules(
    State(authorizer): State<Shared>,
    user: Option<Extension<User>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const KIND: &str = "SelfSubjectRulesReview";
    let body = crate::http::body::read(&headers, body).await;
    answer(
        &headers,
        (|| {
            let review = parse(body, KIND)?;
            let namespace = review["spec"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty());
            let rules = match (&authorizer, user.as_deref()) {
                (Some(authorizer), Some(user)) => authorizer.rules_for(user, namespace),
                _ => Vec::new(),
            };
            let mut resource_rules = Vec::new();
            let mut non_resource_rules = Vec::new();
            for rule in rules {
                if rule
                    .non_resource_urls
                    .as_ref()
                    .is_some_and(|u| !u.is_empty())
                {
                    non_resource_rules.push(json!({
                        "verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls,
                    }));
                } else {
                    let mut entry = json!({
                        "verbs": rule.verbs,
                        "apiGroups": rule.api_groups.unwrap_or_default(),
                        "resources": rule.resources.unwrap_or_default(),
                    });
                    if let Some(names) = rule.resource_names.filter(|n| !n.is_empty()) {
                        entry["resourceNames"] = json!(names);
                    }
                    resource_rules.push(entry);
                }
            }
            let status = json!({
                "resourceRules": resource_rules,
                "nonResourceRules": non_resource_rules,
                "incomplete": authorizer.is_none(),
            });
            Ok(reviewed(review, KIND, status))
        })(),
    )
}
