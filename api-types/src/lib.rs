//! Versioned API types of mini-k8s.
//!
//! The internal form of every object is its `v1` (core/v1) shape from
//! `k8s-openapi`; the 2014 `v1beta1` wire format converts to and from it.
//! Nothing here does IO: the crate is shared by the apiserver, every
//! component and `ctl`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod defaults;
pub mod fields;
pub mod kinds;
pub mod labels;
pub mod patch;
pub mod pod_security;
pub mod remotecommand;
pub mod status;
pub mod table;
pub mod v1;
pub mod v1beta1;
pub mod validation;
pub mod yaml;

pub use status::{FieldError, FieldErrorKind};
