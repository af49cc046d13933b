//! Request bodies (JSON, YAML or protobuf, at most 3 MiB) and what a client
//! accepts.

use axum::body::Body;
use axum::http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::Value;

use crate::error::{ApiError, Result};
use api_types::status::Reason;

/// The largest body accepted, as Kubernetes' apiserver.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A decoded request body.
#[derive(Debug)]
pub struct AcceptedBody {
    /// The body as JSON (YAML bodies are converted).
    pub value: Value,
}

/// Reads and decodes the body; `None` when it is empty.
///
/// A body over [`MAX_BODY_BYTES`] is a 413; one that does not parse is a
/// 400 whose message gives the parser's complaint and position.
pub async fn read(headers: &HeaderMap, body: Body) -> Result<Option<AcceptedBody>> {
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::new(
                Reason::RequestEntityTooLarge,
                format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
            ))
        }
        Err(error) => {
            return Err(ApiError::bad_request(format!(
                "the request body could not be read: {error}"
            )))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if crate::protobuf::is_protobuf(&content_type) {
        let value = crate::protobuf::decode(&bytes)?;
        return Ok(Some(AcceptedBody { value }));
    }
    let yaml =
        content_type.ends_with("yaml") || (content_type.is_empty() && !looks_like_json(&bytes));
    let value = if yaml {
        let value: serde_yaml::Value = serde_yaml::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid YAML: {e}"))
        })?;
        serde_json::to_value(value).map_err(|e| {
            ApiError::bad_request(format!("the request body cannot be read as JSON: {e}"))
        })?
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?
    };
    if !value.is_object() && !value.is_array() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON or YAML object",
        ));
    }
    Ok(Some(AcceptedBody { value }))
}

fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Whether the client asked for a `meta.k8s.io` Table (kubectl get does).
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// Whether the client prefers YAML to JSON.
pub fn wants_yaml(accept: &str) -> bool {
    let first = accept.split(',').next().unwrap_or("").trim();
    first.starts_with("application/yaml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
        assert!(wants_yaml("application/yaml"));
        assert!(!wants_yaml("application/json, application/yaml"));
    }

    #[tokio::test]
    async fn bodies_decode_with_positions() {
        let headers = HeaderMap::new();
        let e = read(&headers, Body::from("{\"a\": 1,\n \"b\" }"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), 400);
        assert!(e.to_string().contains("line 2 column"), "{e}");
        let e = read(&headers, Body::from("a: [1\nb: 2")).await.unwrap_err();
        assert!(e.to_string().contains("YAML"), "{e}");
        let ok = read(&headers, Body::from("kind: Pod\nmetadata:\n  name: x\n"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.value["metadata"]["name"], "x");
        assert!(read(&headers, Body::from("  ")).await.unwrap().is_none());
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let e = read(&headers, Body::from(big)).await.unwrap_err();
        assert_eq!(e.code(), 413);
    }
}
