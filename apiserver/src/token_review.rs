//! `authentication.k8s.io/v1` `TokenReview` (create only, nothing stored):
//! whether a bearer token authenticates here, and as whom. A kubelet's
//! `--authentication-token-webhook` posts one for each token it is shown,
//! as Kubernetes' kubelets do. Tokens are checked against
//! `--token-auth-file`; without one no token authenticates.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use crate::auth::TokenAuth;
use crate::authz::review::{answer, parse};

/// The group-version served.
pub const GROUP_VERSION: &str = "authentication.k8s.io/v1";

/// The route, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(tokens: Option<TokenAuth>) -> Router<S> {
    Router::new()
        .route(&format!("/apis/{GROUP_VERSION}/tokenreviews"), post(review))
        .with_state(tokens)
}

/// The review's `status` for `token`.
pub fn status(tokens: Option<&TokenAuth>, token: &str) -> Value {
    let user = tokens.and_then(|t| t.authenticate(Some(&format!("Bearer {token}"))));
    match user {
        Some(user) => json!({
            "authenticated": true,
            "user": { "username": user.name, "uid": user.uid, "groups": user.groups },
        }),
        None => json!({ "authenticated": false, "user": {} }),
    }
}

async fn review(
    State(tokens): State<Option<TokenAuth>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    const KIND: &str = "TokenReview";
    let body = crate::http::body::read(&headers, body).await;
    answer(
        &headers,
        parse(body, KIND).map(|mut review| {
            let token = review
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            review["apiVersion"] = GROUP_VERSION.into();
            review["kind"] = KIND.into();
            if !review.get("metadata").is_some_and(Value::is_object) {
                review["metadata"] = json!({});
            }
            review["metadata"]["creationTimestamp"] = Value::Null;
            review["status"] = status(tokens.as_ref(), &token);
            review
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_token_names_its_user_and_an_unknown_one_nobody() {
        let tokens = TokenAuth::parse("t1,alice,7,\"ops\"\n").unwrap();
        let known = status(Some(&tokens), "t1");
        assert_eq!(known["authenticated"], true);
        assert_eq!(known["user"]["username"], "alice");
        assert_eq!(
            known["user"]["groups"],
            json!(["ops", "system:authenticated"])
        );
        assert_eq!(status(Some(&tokens), "t2")["authenticated"], false);
        assert_eq!(status(None, "t1")["authenticated"], false);
    }
}
