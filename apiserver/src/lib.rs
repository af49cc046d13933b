//! The mini-k8s API server: the REST API over etcd.
//!
//! - [`storage`]: the key-value store trait and its etcd backend.
//! - [`registry`]: the generic store plus one strategy per resource.
//! - [`http`]: paths, bodies, content negotiation, watch streaming.
//! - [`codec`]: the `/api/v1beta1` translation to and from v1.
//! - [`discovery`], [`metrics`], [`auth`]: what clients need besides objects.
//! - [`authz`]: authorization (RBAC) and the access reviews.
//! - [`server`]: configuration, wiring and the accept loop.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod auth;
pub mod authz;
pub mod codec;
pub mod discovery;
pub mod endpoint_reconciler;
pub mod error;
pub mod exec;
pub mod health;
pub mod http;
pub mod kubelet_client;
pub mod kubelet_tls;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod portforward;
pub mod protobuf;
pub mod registry;
pub mod server;
pub mod storage;
pub mod token_review;

pub use server::{serve, Config, EndpointReconcilerType, ServerError};
