//! RBAC (issue #13): with a token file, a user without bindings is refused
//! with Kubernetes' 403; stock kubectl creates roles and bindings that
//! grant exactly what they say; `kubectl auth can-i` answers; escalation
//! is refused.

use std::time::Duration;

use anyhow::{bail, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{ListParams, PostParams};
use kube::Api;
use mini_k8s_tests::apiserver::{TestApiServer, TestCluster};
use serde_json::json;

use crate::kubectl::{kubectl_available, Kubectl};

const TOKENS: &str = "admin-token,admin,1,\"system:masters\"\nalice-token,alice,2\n";

/// A TLS cluster (kubectl sends tokens over TLS only) with the admin and
/// alice in its token file, a kubectl and a kube client for each.
struct Rbac {
    _cluster: TestCluster,
    _dir: tempfile::TempDir,
    admin: Kubectl,
    alice: Kubectl,
    admin_client: kube::Client,
    alice_client: kube::Client,
}

/// `create role NAME --verb=VERBS --resource=RESOURCES -n team`.
fn create_role(name: &str, verbs: &str, resources: &str) -> Vec<String> {
    let (verbs, resources) = (format!("--verb={verbs}"), format!("--resource={resources}"));
    in_team(&["create", "role", name, &verbs, &resources])
}

/// `create rolebinding NAME ROLE --user=alice -n team`, `role` being
/// `--role=NAME` or `--clusterrole=NAME`.
fn bind_alice(name: &str, role: &str) -> Vec<String> {
    in_team(&["create", "rolebinding", name, role, "--user=alice"])
}

/// `args -n team`.
fn in_team(args: &[&str]) -> Vec<String> {
    args.iter()
        .chain(&["-n", "team"])
        .map(ToString::to_string)
        .collect()
}

async fn cluster() -> Result<Option<Rbac>> {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(None);
    }
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = crate::auth_tls::certificates(dir.path())?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS)?;
    let c = TestCluster::start_with(|config| {
        config.token_auth_file = Some(tokens.clone());
        config.tls_cert_file = Some(cert);
        config.tls_private_key_file = Some(key);
    })
    .await?;
    let mut kubectls = Vec::new();
    let mut clients = Vec::new();
    for who in ["admin", "alice"] {
        let home = dir.path().join(who);
        std::fs::create_dir_all(&home)?;
        let kubeconfig = mini_k8s_tests::kubeconfig::write(
            &home,
            c.url(),
            Some(&format!("{who}-token")),
            Some(&ca),
        )?;
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        clients.push(kube::Client::try_from(config)?);
        kubectls.push(Kubectl { kubeconfig });
    }
    let (alice_client, admin_client) = (clients.remove(1), clients.remove(0));
    let (alice, admin) = (kubectls.remove(1), kubectls.remove(0));
    // Bootstrap (namespaces, default roles) runs in the background.
    let namespaces: Api<Namespace> = Api::all(admin_client.clone());
    eventually("the default namespace exists", || async {
        Ok(namespaces.get("default").await.is_ok())
    })
    .await?;
    // The default roles and bindings come last, and discovery for every
    // authenticated user is one of them: `/readyz` waits for them
    // (`poststarthook/rbac/bootstrap-roles`). Without this wait, alice's
    // discovery could come first and be refused.
    eventually(
        "the apiserver is ready, its default roles written",
        || async {
            Ok(admin
                .run(&["get", "--raw", "/readyz"])
                .await?
                .status
                .success())
        },
    )
    .await?;
    Ok(Some(Rbac {
        _cluster: c,
        _dir: dir,
        admin,
        alice,
        admin_client,
        alice_client,
    }))
}

/// The Status of a refused call, or `None` when it succeeded.
fn refusal<T>(result: kube::Result<T>) -> Result<Option<Box<kube::core::Status>>> {
    match result {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(status)) => Ok(Some(status)),
        Err(e) => Err(e.into()),
    }
}

async fn list_pods(
    client: &kube::Client,
    namespace: &str,
) -> Result<Option<Box<kube::core::Status>>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    refusal(pods.list(&ListParams::default()).await)
}

/// `kubectl auth can-i` as `who`: true for "yes" (exit 0), false for "no".
async fn can_i(who: &Kubectl, args: &[&str]) -> Result<bool> {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let out = who.run(&all).await?;
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match (answer.as_str(), out.status.success()) {
        ("yes", true) => Ok(true),
        ("no", false) => Ok(false),
        _ => bail!(
            "kubectl auth can-i {args:?}: {answer:?} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Retries `check` until it holds: the authorizer reads roles and bindings
/// from a watch, so a grant takes effect a moment after it is stored.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    for _ in 0..100 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{what}: still not so after 100 tries")
}

/// The old apiserver let every valid token do everything: alice could
/// list pods, create one mounting the host's root, read secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_bindings_is_forbidden_as_kubernetes_says() -> Result<()> {
    let Some(r) = cluster().await? else {
        return Ok(());
    };
    // By reference: `r` (the cluster, the kubeconfigs) lives to the end.
    let Rbac {
        ref admin,
        ref alice,
        ref admin_client,
        ref alice_client,
        ..
    } = r;
    let Some(status) = list_pods(alice_client, "default").await? else {
        bail!("alice listed pods without any binding");
    };
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    let details = status
        .details
        .as_ref()
        .map(|d| (d.kind.as_str(), d.name.as_str()));
    assert_eq!(details, Some(("pods", "")));
    let nodes: Api<Node> = Api::all(alice_client.clone());
    let Some(status) = refusal(nodes.get("m1").await)? else {
        bail!("alice read a node");
    };
    assert_eq!(
        status.message,
        r#"nodes "m1" is forbidden: User "alice" cannot get resource "nodes" in API group "" at the cluster scope"#
    );
    // Discovery stays open to every authenticated user.
    alice.ok(&["get", "--raw", "/api/v1"]).await?;
    alice.ok(&["api-resources"]).await?;
    // The admin (system:masters) may do anything.
    assert!(list_pods(admin_client, "default").await?.is_none());

    let refused = alice.fails(&["get", "pods"]).await?;
    assert!(
        refused.contains(r#"Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#),
        "{refused}"
    );
    let host = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": "root", "namespace": "default" },
        "spec": {
            "containers": [{ "name": "c", "image": "busybox",
                             "volumeMounts": [{ "name": "host", "mountPath": "/host" }] }],
            "volumes": [{ "name": "host", "hostPath": { "path": "/" } }],
        }
    });
    let pods: Api<Pod> = Api::namespaced(alice_client.clone(), "default");
    let created = refusal(
        pods.create(&PostParams::default(), &serde_json::from_value(host)?)
            .await,
    )?;
    assert_eq!(created.map(|s| s.code), Some(403));
    assert!(!can_i(alice, &["list", "secrets"]).await?);
    assert!(!can_i(alice, &["create", "pods"]).await?);
    assert!(can_i(admin, &["create", "pods"]).await?);
    assert!(can_i(admin, &["*", "*"]).await?);
    // The bootstrap policy is there for kubectl to see.
    let roles = admin.ok(&["get", "clusterroles", "-o", "name"]).await?;
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:node",
        "system:kube-scheduler",
    ] {
        assert!(
            roles.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role}\n")),
            "{roles}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_roles_and_bindings_grant_exactly_what_they_say() -> Result<()> {
    let Some(r) = cluster().await? else {
        return Ok(());
    };
    // By reference: `r` (the cluster, the kubeconfigs) lives to the end.
    let Rbac {
        ref admin,
        ref alice,
        ref alice_client,
        ..
    } = r;
    admin.ok(&["create", "namespace", "team"]).await?;
    admin
        .ok(&create_role("pod-reader", "get,list", "pods"))
        .await?;
    admin
        .ok(&bind_alice("alice-reads", "--role=pod-reader"))
        .await?;
    let binding = admin
        .ok(&["get", "rolebinding", "alice-reads", "-n", "team"])
        .await?;
    assert!(binding.contains("Role/pod-reader"), "{binding}");
    eventually("alice lists pods in team", || async {
        Ok(list_pods(alice_client, "team").await?.is_none())
    })
    .await?;
    alice.ok(&["get", "pods", "-n", "team"]).await?;
    assert!(can_i(alice, &["list", "pods", "-n", "team"]).await?);
    assert!(can_i(alice, &["get", "pods/web", "-n", "team"]).await?);
    // `can-i --list` reads a SelfSubjectRulesReview: her role's rule, and
    // discovery from system:discovery.
    let rules = alice.ok(&["auth", "can-i", "--list", "-n", "team"]).await?;
    assert!(
        rules
            .lines()
            .any(|l| l.starts_with("pods ") && l.contains("[get list]")),
        "{rules}"
    );
    assert!(rules.contains("[/api/*]"), "{rules}");
    // In that namespace only, and only those verbs.
    assert!(!can_i(alice, &["list", "pods", "-n", "default"]).await?);
    assert!(!can_i(alice, &["delete", "pods", "-n", "team"]).await?);
    assert!(!can_i(alice, &["list", "pods", "--all-namespaces"]).await?);
    let refused = alice.fails(&["get", "pods", "-n", "default"]).await?;
    assert!(refused.contains("Forbidden"), "{refused}");
    let refused = alice.fails(&["delete", "pod", "web", "-n", "team"]).await?;
    assert!(
        refused.contains(r#"pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "team""#),
        "{refused}"
    );
    // A roleRef may not change.
    let changed = admin
        .fails(&[
            "patch",
            "rolebinding",
            "alice-reads",
            "-n",
            "team",
            "--type=merge",
            "-p",
            r#"{"roleRef":{"name":"admin","kind":"ClusterRole"}}"#,
        ])
        .await?;
    assert!(changed.contains("cannot change roleRef"), "{changed}");
    // Unbinding takes the grant away again.
    admin
        .ok(&["delete", "rolebinding", "alice-reads", "-n", "team"])
        .await?;
    eventually("alice refused again", || async {
        Ok(list_pods(alice_client, "team")
            .await?
            .is_some_and(|s| s.code == 403))
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_through_roles_and_bindings_is_refused() -> Result<()> {
    let Some(r) = cluster().await? else {
        return Ok(());
    };
    // By reference: `r` (the cluster, the kubeconfigs) lives to the end.
    let Rbac {
        ref admin,
        ref alice,
        ..
    } = r;
    admin.ok(&["create", "namespace", "team"]).await?;
    // alice may manage roles and bindings in team, and read pods there.
    let verbs = "get,list,create,update,patch,delete";
    admin
        .ok(&create_role("rbac-manager", verbs, "roles,rolebindings"))
        .await?;
    admin
        .ok(&create_role("pod-reader", "get,list", "pods"))
        .await?;
    for role in ["rbac-manager", "pod-reader"] {
        admin
            .ok(&bind_alice(
                &format!("alice-{role}"),
                &format!("--role={role}"),
            ))
            .await?;
    }
    eventually("alice may create roles", || {
        can_i(alice, &["create", "roles", "-n", "team"])
    })
    .await?;
    eventually("alice reads pods", || {
        can_i(alice, &["list", "pods", "-n", "team"])
    })
    .await?;
    // What she holds she may grant...
    alice.ok(&create_role("pod-getter", "get", "pods")).await?;
    // ...but not more.
    let refused = alice
        .fails(&create_role("pod-killer", "delete", "pods"))
        .await?;
    assert!(
        refused
            .contains(r#"roles.rbac.authorization.k8s.io "pod-killer" is forbidden: user "alice""#)
            && refused.contains("attempting to grant RBAC permissions not currently held"),
        "{refused}"
    );
    let refused = alice
        .fails(&bind_alice("alice-admin", "--clusterrole=admin"))
        .await?;
    assert!(
        refused.contains("attempting to grant RBAC permissions not currently held"),
        "{refused}"
    );
    let refused = alice
        .fails(&[
            "patch",
            "role",
            "pod-reader",
            "-n",
            "team",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/rules/0/verbs/-","value":"delete"}]"#,
        ])
        .await?;
    assert!(
        refused.contains("attempting to grant RBAC permissions not currently held"),
        "{refused}"
    );
    // With `bind` on a role she may bind it without holding it.
    let mut binder = create_role("binder", "bind", "clusterroles");
    binder.push("--resource-name=edit".into());
    admin.ok(&binder).await?;
    admin
        .ok(&bind_alice("alice-binder", "--role=binder"))
        .await?;
    eventually("alice may bind edit", || async {
        let out = alice
            .run(&bind_alice("alice-edit", "--clusterrole=edit"))
            .await?;
        Ok(out.status.success())
    })
    .await?;
    eventually("alice edits in team", || {
        can_i(alice, &["delete", "pods", "-n", "team"])
    })
    .await?;
    assert!(!can_i(alice, &["delete", "pods", "-n", "default"]).await?);
    Ok(())
}

/// A kube client for `url` with `token`, trusting `ca` (its kubeconfig in
/// `home`).
async fn client_for(
    home: &std::path::Path,
    url: &str,
    token: &str,
    ca: &std::path::Path,
) -> Result<kube::Client> {
    std::fs::create_dir_all(home)?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(home, url, Some(token), Some(ca))?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// Kubernetes reconciles its bootstrap policy at every start: what is
/// missing comes back, what an administrator added stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_roles_are_completed_at_start_and_additions_kept() -> Result<()> {
    use apiserver::authz::{bootstrap, rbac::uncovered};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule};

    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = crate::auth_tls::certificates(dir.path())?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS)?;
    let etcd = tokio::task::spawn_blocking(mini_k8s_tests::etcd::Etcd::start).await??;
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    config.tls_cert_file = Some(cert);
    config.tls_private_key_file = Some(key);
    config.token_auth_file = Some(tokens);
    let first = TestApiServer::start(config.clone()).await?;
    let admin = client_for(&dir.path().join("a"), first.url(), "admin-token", &ca).await?;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    eventually("the default roles exist", || async {
        Ok(bindings.get("system:basic-user").await.is_ok())
    })
    .await?;
    let secrets = PolicyRule {
        verbs: vec!["get".into()],
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        ..PolicyRule::default()
    };
    let mut view = roles.get("view").await?;
    view.rules
        .get_or_insert_with(Vec::new)
        .push(secrets.clone());
    roles.replace("view", &PostParams::default(), &view).await?;
    let mut edit = roles.get("edit").await?;
    edit.rules.get_or_insert_with(Vec::new).remove(0);
    roles.replace("edit", &PostParams::default(), &edit).await?;
    bindings
        .delete("system:basic-user", &Default::default())
        .await?;
    first.stop().await?;

    let second = TestApiServer::start(config).await?;
    let admin = client_for(&dir.path().join("b"), second.url(), "admin-token", &ca).await?;
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(admin);
    eventually("the deleted binding is back", || async {
        Ok(bindings.get("system:basic-user").await.is_ok())
    })
    .await?;
    let defaults = bootstrap::cluster_roles();
    let default_edit = defaults
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("edit"))
        .and_then(|r| r.rules.clone())
        .unwrap_or_default();
    let edit = roles.get("edit").await?.rules.unwrap_or_default();
    assert!(uncovered(&edit, &default_edit).is_empty(), "{edit:?}");
    let view = roles.get("view").await?.rules.unwrap_or_default();
    assert!(
        view.contains(&secrets),
        "the administrator's rule stays: {view:?}"
    );
    second.stop().await?;
    Ok(())
}
