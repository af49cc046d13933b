//! The registry: one generic store ([`Store`]) that does what every
//! resource shares (names, uid, timestamps, resourceVersion, optimistic
//! concurrency, selectors, paging, watch), and one module per resource with
//! its [`Strategy`] (defaults, validation, what an update may change).
//!
//! A request flows: decode → strategy prepare → defaults → validate → store.
//!
//! Its seams, one file each: [`strategy`] (what a resource plugs in),
//! [`rest`] (the object-safe face the HTTP layer calls), [`options`] (what
//! a request asks of a write or delete) and [`store`] (the generic store
//! over [`Storage`](crate::storage::Storage)).

pub mod componentstatuses;
pub mod config;
pub mod daemon_sets;
pub mod endpoints;
pub mod events;
pub mod ingresses;
pub mod leases;
pub mod namespaces;
pub mod nodes;
pub mod pod_security;
pub mod pods;
pub mod rbac;
pub mod replication_controllers;
pub mod service_ips;
pub mod services;
pub mod watch_cache;

mod encoded_list;

pub mod options;
pub mod rest;
pub mod store;
pub mod strategy;

pub use options::{
    parse_dry_run, DeleteOptions, FieldValidation, Patch, Propagation, WriteOptions,
    FINALIZER_FOREGROUND, FINALIZER_ORPHAN,
};
pub use rest::{
    watch_error, EncodedObject, JsonObject, ListQuery, ListResult, Rest, WatchEvent, WatchStream,
};
pub use store::{now, Store};
pub use strategy::{Strategy, Subresource};
// The per-resource modules (pods' binding) write through the store's loop.
use store::{conflict_backoff, guess_or_read, matches, MAX_WRITE_ATTEMPTS};
