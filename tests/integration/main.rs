//! Integration tests against a real etcd and apiserver.
