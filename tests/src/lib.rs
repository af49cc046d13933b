//! Test harness: real etcd and an in-process apiserver on free loopback ports.
