//! Integration tests: a real etcd and an in-process apiserver per test.
//! One binary (`autotests = false`); each module is one area.

/// The apiserver binary as a process: metrics, SIGTERM, flag errors.
mod apiserver_process;
/// Bearer tokens and TLS.
mod auth_tls;
/// Writes starting from the watch cache's copy: no etcd read, nothing lost when stale.
mod cached_writes;
/// The cluster-dns binary: A, headless, SRV, NXDOMAIN/NODATA, following changes (#17).
mod cluster_dns;
/// etcd compaction by the apiserver, one claim per interval, a full etcd.
mod compaction;
/// Optimistic concurrency: 409s and concurrent read-modify-write.
mod concurrency;
/// ConfigMaps and Secrets: kubectl's create commands, stringData, validation (#16).
mod config_and_secrets;
/// The controller manager in-process: replication, endpoints, node lifecycle.
mod controllers;
/// CRUD of every kind through v1 and v1beta1, and conversion between them.
mod crud;
/// `ctl config|version|cluster-info|api-resources|describe|completion`, shared kubeconfig.
mod ctl_config;
/// `ctl` errors: duplicate, invalid, not found, unauthorized, server down, bad YAML.
mod ctl_errors;
/// `ctl run|expose|edit|rolling-update`.
mod ctl_extras;
/// `ctl get`: tables of every kind, output formats, selectors, watch.
mod ctl_get;
/// Running the `ctl` binary against a test cluster; golden files.
mod ctl_harness;
/// `ctl create|apply|replace|delete|label|annotate|scale`, v1beta1 manifests.
mod ctl_manifests;
/// `ctl logs|exec|attach|port-forward|cp` and kubectl's on real Docker (#15).
mod ctl_streaming;
/// DaemonSets: one pod per node, nodes coming and going, rolling updates, stock kubectl (#17).
mod daemonsets;
/// `dryRun=All` on every write: etcd unchanged; ExternalName turned ClusterIP.
mod dry_run;
/// Errors: malformed bodies, oversize bodies, unknown paths, invalid objects.
mod errors;
/// etcd: the key layout and a 3-member cluster losing a member.
mod etcd_storage;
/// Events: the recorder's correlation against a real apiserver, TTL leases on updates.
mod events;
/// The manifests under examples/ are accepted as written.
mod examples;
/// `pods/exec` and `pods/attach` with kubectl and the Python client on real Docker; RBAC's create (#15).
mod exec_attach;
/// Survive losing a process: kill -9 of each component of an HA cluster under load (#14).
mod fault_tolerance;
/// `fieldValidation` on unknown and repeated fields, and kubectl's default.
mod field_validation;
/// `/healthz`, `/livez`, `/readyz` of every component binary; `kubectl get cs` (#17).
mod health;
/// The ingress-proxy binary: host and path routing, 404/503, X-Forwarded-*, changes in flight; Ingresses through kubectl (#17).
mod ingress;
/// The `kube` crate (list, watch through `kube::runtime::watcher`).
mod kube_client;
/// The stock kubectl against the apiserver.
mod kubectl;
/// The kubelet on a private dockerd: pods as containers, volumes, env, restarts, deletion.
mod kubelet;
/// Pods reading ConfigMaps and Secrets: env, envFrom, volumes following edits (#16).
mod kubelet_config;
/// Lists of any size (past etcd's 4 MiB answers) and filtered lists in growing pages (#19).
mod large_lists;
/// Leader election on a Lease: one leads, a dead leader is replaced, a release is quick.
mod leader_election;
/// `coordination.k8s.io/v1` Leases: CRUD and watch under `/apis`, discovery, the kube crate, kubectl.
mod leases;
/// Lists from the watch cache: whole past 4 MiB, current, no etcd reads (#19 item 1).
mod list_cache;
/// OpenAPI v2/v3 schemas and the stock kubectl's `explain` (#16).
mod openapi;
/// Patches: merge, JSON, strategic.
mod patch;
/// `pods/portforward`: stock kubectl (SPDY, plain and tunneled) and the Python client on real Docker (#15).
mod port_forward;
/// Stock kubectl's protobuf bodies (typed `create`, `describe`), `drain` and `pods/eviction`.
mod protobuf;
/// kube-proxy in a node network namespace, both modes: balance, affinity, UDP, publicIPs, rule cleanup.
mod proxy;
/// RBAC: the 403 for an unbound user, kubectl roles and bindings, `auth can-i`, escalation (#13).
mod rbac;
/// The route controller in a network namespace: routes follow nodes, go on SIGTERM.
mod routes;
/// The scheduler in-process: placement within capacity, unschedulable pods, host ports.
mod scheduler;
/// Issue #13: bounds on every input and connection, one test per attack.
mod security;
/// Namespaces, service IPs, bindings, scale, graceful deletion.
mod semantics;
/// Server-side apply: kubectl --server-side from two managers, conflicts, force, managedFields, the kube crate (#16).
mod server_side_apply;
/// Several apiservers on one etcd: shared service IP allocation, the kubernetes endpoints.
mod several_apiservers;
/// Watch: order, resume, 410 Gone, selectors.
mod watch;
