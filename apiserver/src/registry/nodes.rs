//! Nodes (v1beta1 minions): registered by kubelets, which report their
//! status through `nodes/{name}/status`.

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Node;
use api_types::{defaults, validation, FieldError};

use super::Strategy;

/// The node strategy.
pub struct NodeStrategy;

#[async_trait::async_trait]
impl Strategy for NodeStrategy {
    type Object = Node;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::NODES
    }

    fn default(&self, node: &mut Node) {
        defaults::default_node(node);
    }

    fn validate(&self, node: &Node) -> Vec<FieldError> {
        validation::validate_node(node)
    }

    fn validate_update(&self, new: &Node, old: &Node) -> Vec<FieldError> {
        validation::validate_node_update(new, old)
    }

    async fn admit_create(&self, node: &Node) -> crate::error::Result<()> {
        crate::authz::node::admit_node_create(node.metadata.name.as_deref().unwrap_or(""))
    }
}
