//! Request bodies: JSON, YAML, protobuf and the 2014 v1beta1 form, through
//! the apiserver's own decoding (`http::body::read`), then the v1beta1
//! conversion, the typed decode and validation every create runs.

use api_types::kinds;
use api_types::v1::{Node, Pod, ReplicationController, Service};
use api_types::validation;
use apiserver::http::body;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use crate::corpus::{config, mutated, seeds};

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "",
    "text/plain",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// What the apiserver does with a body before it reaches storage; panics
/// (the failure) on anything but a value or a client error.
fn decode_like_a_create(runtime: &tokio::runtime::Runtime, content_type: &str, bytes: Vec<u8>) {
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert("content-type", value);
    }
    let accepted = runtime.block_on(body::read(&headers, Body::from(bytes)));
    let value = match accepted {
        Ok(Some(accepted)) => accepted.value,
        Ok(None) => return,
        Err(error) => {
            assert!(
                (400..500).contains(&error.code()),
                "a body was refused with {}: {:?}",
                error.code(),
                error.0
            );
            return;
        }
    };
    for resource in kinds::ALL.iter().filter(|r| r.v1beta1_plural.is_some()) {
        if let Ok(v1) = apiserver::codec::object_from_v1beta1(resource, value.clone()) {
            typed_and_validated(&v1);
        }
    }
    typed_and_validated(&value);
    // Whatever decoded must encode again (or say why not).
    let _ = apiserver::protobuf::encode(&value);
}

fn typed_and_validated(value: &Value) {
    if let Ok(pod) = serde_json::from_value::<Pod>(value.clone()) {
        let _ = validation::validate_pod(&pod);
    }
    if let Ok(service) = serde_json::from_value::<Service>(value.clone()) {
        let _ = validation::validate_service(&service);
    }
    if let Ok(rc) = serde_json::from_value::<ReplicationController>(value.clone()) {
        let _ = validation::validate_replication_controller(&rc);
    }
    if let Ok(node) = serde_json::from_value::<Node>(value.clone()) {
        let _ = validation::validate_node(&node);
    }
}

#[test]
fn corpus_bodies_decode_or_are_refused() {
    let runtime = runtime();
    for (name, seed) in seeds("bodies") {
        for content_type in CONTENT_TYPES {
            eprintln!("{name} as {content_type:?}");
            decode_like_a_create(&runtime, content_type, seed.clone());
        }
    }
}

/// Valid protobuf bodies to mutate: the JSON seeds that encode.
fn protobuf_seeds() -> Vec<Vec<u8>> {
    let runtime = runtime();
    let mut out = Vec::new();
    for (_, seed) in seeds("bodies") {
        let headers = HeaderMap::new();
        if let Ok(Some(accepted)) = runtime.block_on(body::read(&headers, Body::from(seed))) {
            if let Ok(bytes) = apiserver::protobuf::encode(&accepted.value) {
                out.push(bytes);
            }
        }
    }
    assert!(!out.is_empty(), "no body seed encodes as protobuf");
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_bodies_decode_or_are_refused(
        bytes in mutated("bodies"),
        content_type in prop::sample::select(CONTENT_TYPES),
    ) {
        decode_like_a_create(&runtime(), content_type, bytes);
    }

    #[test]
    fn generated_json_bodies_decode_or_are_refused(value in crate::corpus::json_value()) {
        let bytes = serde_json::to_vec(&value).expect("JSON encodes");
        decode_like_a_create(&runtime(), "application/json", bytes);
    }

    #[test]
    fn mutated_protobuf_decodes_or_is_refused(
        (seed, edits) in (
            prop::sample::select(protobuf_seeds()),
            prop::collection::vec(any::<(usize, u8)>(), 0..6),
        ),
    ) {
        let mut bytes = seed;
        for (at, b) in edits {
            // Keep the `k8s\0` magic so the decoder gets past it.
            if bytes.len() > 4 {
                let at = 4 + at % (bytes.len() - 4);
                bytes[at] = b;
            }
        }
        if let Ok(value) = apiserver::protobuf::decode(&bytes) {
            typed_and_validated(&value);
            let _ = apiserver::protobuf::encode(&value);
        }
    }
}
