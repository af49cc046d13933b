//! The mini-k8s API server.
