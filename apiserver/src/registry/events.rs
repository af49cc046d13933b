//! Events: stored with a lease so that they expire by themselves.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Event;
use api_types::{validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The event strategy.
pub struct EventStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
    /// Seconds an event is kept (`--event-ttl`).
    pub ttl_seconds: i64,
}

#[async_trait]
impl Strategy for EventStrategy {
    type Object = Event;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::EVENTS
    }

    fn default(&self, _event: &mut Event) {}

    fn validate(&self, event: &Event) -> Vec<FieldError> {
        validation::validate_event(event)
    }

    fn validate_update(&self, new: &Event, _old: &Event) -> Vec<FieldError> {
        validation::validate_event(new)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn ttl(&self) -> Option<i64> {
        Some(self.ttl_seconds)
    }

    async fn admit_create(&self, event: &Event) -> Result<()> {
        self.namespaces
            .admit(event.metadata.namespace.as_deref())
            .await
    }
}
