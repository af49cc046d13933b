//! Test harness: real etcd and an in-process apiserver on free loopback ports.
//!
//! Everything a harness starts is stopped when its handle drops, leaving no
//! process or data directory behind.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod apiserver;
pub mod balancer;
pub mod binaries;
pub mod dns;
pub mod docker;
pub mod etcd;
pub mod interrupts;
pub mod kubeconfig;
pub mod netns;
pub mod node;
pub mod processes;
