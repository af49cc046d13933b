//! The v1 wire format (core/v1, coordination/v1 for Leases, rbac/v1,
//! authorization/v1 and networking/v1 for Ingresses): the internal form of every object.
//!
//! These are `k8s-openapi`'s types, re-exported so that every crate names
//! them one way.

pub use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SubjectAccessReview,
    SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
pub use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
pub use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Container, ContainerPort, ContainerState, ContainerStatus, EndpointAddress,
    EndpointPort, EndpointSubset, Endpoints, EnvVar, Event, Namespace, NamespaceStatus, Node,
    NodeAddress, NodeCondition, NodeStatus, ObjectReference, Pod, PodCondition, PodSpec, PodStatus,
    PodTemplateSpec, Probe, ReplicationController, ReplicationControllerSpec,
    ReplicationControllerStatus, ResourceRequirements, Secret, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
pub use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressClass, IngressClassSpec,
    IngressLoadBalancerIngress, IngressLoadBalancerStatus, IngressRule, IngressServiceBackend,
    IngressSpec, IngressStatus, IngressTLS, ServiceBackendPort,
};
pub use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};
pub use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    ListMeta, ObjectMeta, Status, StatusCause, StatusDetails, Time, WatchEvent,
};
pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
