//! Pod sync against the recording hollow runtime: the calls a sync makes,
//! and the status it computes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde_json::json;

use crate::hollow::HollowRuntime;
use k8s_openapi::api::core::v1::Service;

use crate::objects::{ObjectSource, StaticObjects};
use crate::pod::{kill_pod, Now, PodState, Sources, SyncConfig, SyncError, SyncResult};
use crate::runtime::{ContainerState, Runtime, INFRA_CONTAINER_NAME};

/// A sync with no ConfigMaps or Secrets in the cluster.
async fn sync_pod(
    rt: &dyn Runtime,
    cfg: &SyncConfig,
    p: &Pod,
    services: &[&Service],
    state: &mut PodState,
) -> Result<SyncResult, SyncError> {
    let objects = StaticObjects::new();
    sync_with(rt, &objects, cfg, p, services, state, Now::current()).await
}

/// A sync at `now` (a paused clock's), with no services or objects.
async fn sync_at(
    rt: &dyn Runtime,
    cfg: &SyncConfig,
    p: &Pod,
    state: &mut PodState,
    now: Now,
) -> Result<SyncResult, SyncError> {
    sync_with(rt, &StaticObjects::new(), cfg, p, &[], state, now).await
}

async fn sync_with(
    runtime: &dyn Runtime,
    objects: &dyn ObjectSource,
    cfg: &SyncConfig,
    p: &Pod,
    services: &[&Service],
    state: &mut PodState,
    now: Now,
) -> Result<SyncResult, SyncError> {
    let src = Sources {
        runtime,
        services,
        objects,
    };
    crate::pod::sync_pod_at(src, cfg, p, state, now).await
}

fn config(root: &std::path::Path) -> SyncConfig {
    SyncConfig {
        node_name: "n1".into(),
        host_ip: "127.0.0.1".into(),
        infra_image: "pause".into(),
        root_dir: root.to_path_buf(),
        backoff_base: Duration::from_millis(300),
        backoff_max: Duration::from_secs(5),
        backoff_reset: Duration::from_secs(600),
        extra_labels: Default::default(),
        dns: crate::dns::ClusterDns::default(),
    }
}

/// Wall time that moves with tokio's paused clock from the test's start,
/// so a back-off (measured from the container's wall-clock `finishedAt`)
/// is waited out with `tokio::time::advance`, in no time.
struct PausedClock {
    wall: jiff::Timestamp,
    mono: tokio::time::Instant,
}

impl PausedClock {
    fn new() -> Self {
        Self {
            wall: jiff::Timestamp::now(),
            mono: tokio::time::Instant::now(),
        }
    }

    fn now(&self) -> Now {
        let mono = tokio::time::Instant::now();
        let passed = jiff::SignedDuration::try_from(mono - self.mono).unwrap();
        Now {
            wall: self.wall + passed,
            mono,
        }
    }
}

/// [`config`] with Kubernetes' back-off: 10 s doubling to 5 min.
fn paused_config(root: &std::path::Path) -> SyncConfig {
    SyncConfig {
        backoff_base: Duration::from_secs(10),
        backoff_max: Duration::from_secs(300),
        ..config(root)
    }
}

/// What most sync tests start from: a temp dir (kept while the test runs),
/// a hollow runtime, a config rooted in the dir, and a fresh pod state.
fn hollow() -> (tempfile::TempDir, HollowRuntime, SyncConfig, PodState) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    (dir, HollowRuntime::new(), cfg, PodState::default())
}

fn pod(policy: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1", "resourceVersion": "1"},
        "spec": {"restartPolicy": policy, "containers": [
            {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent"}]}
    }))
    .unwrap()
}

fn reasons(state: &mut PodState) -> Vec<String> {
    state
        .events
        .drain(..)
        .map(|e| format!("{}:{}", e.reason, e.container.unwrap_or_default()))
        .collect()
}

fn waiting_reason(status: &PodStatus) -> Option<String> {
    status.container_statuses.as_ref()?[0]
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .clone()
}

fn app_id(rt: &HollowRuntime) -> String {
    rt.containers()
        .into_iter()
        .filter(|c| c.container_name() == "c")
        .max_by_key(crate::runtime::ContainerInfo::restart_count)
        .unwrap()
        .id
}

#[tokio::test]
async fn a_new_pod_gets_an_infra_container_then_its_app_joining_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = HollowRuntime::new();
    let mut state = PodState::default();
    let result = sync_pod(
        &rt,
        &config(dir.path()),
        &pod("Always", "busybox"),
        &[],
        &mut state,
    )
    .await
    .unwrap();
    let calls = rt.take_calls();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(calls[0].starts_with("create:mk8s_POD_p_default_uid-1_0_"));
    assert!(calls[1].starts_with("start:"));
    assert!(calls[2].starts_with("create:mk8s_c_p_default_uid-1_0_"));
    let status = result.status;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.pod_ip.is_some());
    let cs = &status.container_statuses.unwrap()[0];
    assert!(cs.ready);
    assert_eq!(cs.restart_count, 0);
    assert!(rt
        .containers()
        .iter()
        .any(|c| c.container_name() == INFRA_CONTAINER_NAME && c.state == ContainerState::Running));
}

#[tokio::test]
async fn a_converged_pod_makes_no_runtime_changes() {
    let (_dir, rt, cfg, mut state) = hollow();
    let p = pod("Always", "busybox");
    let first = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    rt.take_calls();
    // A fresh state too: what a restarted kubelet would do.
    let mut fresh = PodState::default();
    let second = sync_pod(&rt, &cfg, &p, &[], &mut fresh).await.unwrap();
    assert_eq!(rt.take_calls(), Vec::<String>::new());
    assert_eq!(
        first.status.container_statuses,
        second.status.container_statuses
    );
}

/// A sync of `p` at the clock's time, which must succeed, and what it
/// reports of the pod's first container: its waiting reason and restarts.
async fn sync_reports(
    rt: &HollowRuntime,
    cfg: &SyncConfig,
    p: &Pod,
    state: &mut PodState,
    clock: &PausedClock,
) -> (Option<String>, i32) {
    let r = sync_at(rt, cfg, p, state, clock.now()).await.unwrap();
    let restarts = r
        .status
        .container_statuses
        .as_ref()
        .map_or(0, |c| c[0].restart_count);
    (waiting_reason(&r.status), restarts)
}

/// Starts `p` (restartPolicy Always), crashes its app twice: restarted at
/// once after the first crash, backing off after the second. Returns the
/// last sync's result.
async fn crash_twice(
    rt: &HollowRuntime,
    cfg: &SyncConfig,
    p: &Pod,
    state: &mut PodState,
    clock: &PausedClock,
) -> crate::pod::SyncResult {
    sync_at(rt, cfg, p, state, clock.now()).await.unwrap();
    rt.exit_container_at(&app_id(rt), 1, clock.now().wall);
    let r = sync_at(rt, cfg, p, state, clock.now()).await.unwrap();
    assert_eq!(r.status.container_statuses.unwrap()[0].restart_count, 1);
    rt.exit_container_at(&app_id(rt), 1, clock.now().wall);
    let r = sync_at(rt, cfg, p, state, clock.now()).await.unwrap();
    assert_eq!(
        waiting_reason(&r.status).as_deref(),
        Some("CrashLoopBackOff")
    );
    r
}

#[tokio::test(start_paused = true)]
async fn a_crashing_container_restarts_with_growing_back_off_under_always() {
    let dir = tempfile::tempdir().unwrap();
    let rt = HollowRuntime::new();
    let cfg = paused_config(dir.path());
    let clock = PausedClock::new();
    let p = pod("Always", "busybox");
    let mut state = PodState::default();
    let r = crash_twice(&rt, &cfg, &p, &mut state, &clock).await;
    let reasons: Vec<&str> = state.events.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        ["Pulled", "Created", "Started", "Pulled", "Created", "Started", "BackOff"]
    );
    let wake = r.wake_at.expect("a back-off wakes the worker");
    let left = wake - tokio::time::Instant::now();
    assert!(
        left > Duration::from_secs(9) && left <= Duration::from_secs(10),
        "{left:?}"
    );
    // Not over yet one second before it ends.
    tokio::time::advance(left - Duration::from_secs(1)).await;
    let (waiting, _) = sync_reports(&rt, &cfg, &p, &mut state, &clock).await;
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    tokio::time::advance(Duration::from_secs(2)).await;
    let (_, restarts) = sync_reports(&rt, &cfg, &p, &mut state, &clock).await;
    assert_eq!(restarts, 2);
    rt.exit_container_at(&app_id(&rt), 1, clock.now().wall);
    tokio::time::advance(Duration::from_secs(11)).await;
    // The delay doubled: 10 s is not enough any more, 20 s is.
    let (waiting, _) = sync_reports(&rt, &cfg, &p, &mut state, &clock).await;
    assert_eq!(waiting.as_deref(), Some("CrashLoopBackOff"));
    tokio::time::advance(Duration::from_secs(10)).await;
    let (_, restarts) = sync_reports(&rt, &cfg, &p, &mut state, &clock).await;
    assert_eq!(restarts, 3);
    // Only the newest dead instance is kept.
    let dead = rt
        .containers()
        .iter()
        .filter(|c| c.container_name() == "c" && c.state == ContainerState::Exited)
        .count();
    assert_eq!(dead, 1);
}

#[tokio::test]
async fn a_container_that_exits_under_never_stays_dead_and_the_pod_fails() {
    let (_dir, rt, cfg, mut state) = hollow();
    let p = pod("Never", "busybox");
    sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    rt.exit_container(&app_id(&rt), 3);
    rt.take_calls();
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(r.status.phase.as_deref(), Some("Failed"));
    let cs = &r.status.container_statuses.unwrap()[0];
    assert_eq!(
        cs.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        3
    );
    let calls = rt.take_calls();
    assert!(calls.iter().all(|c| !c.starts_with("create:")), "{calls:?}");
}

#[tokio::test]
async fn an_unobtainable_image_is_err_image_pull_then_image_pull_back_off() {
    let (_dir, rt, cfg, mut state) = hollow();
    rt.set_image_missing("nope");
    let p = pod("Always", "nope");
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(waiting_reason(&r.status).as_deref(), Some("ErrImagePull"));
    assert_eq!(r.status.phase.as_deref(), Some("Pending"));
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(
        waiting_reason(&r.status).as_deref(),
        Some("ImagePullBackOff")
    );
}

#[tokio::test]
async fn a_changed_container_spec_replaces_only_that_container() {
    let (_dir, rt, cfg, mut state) = hollow();
    let p = pod("Always", "busybox");
    sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    let old = app_id(&rt);
    rt.take_calls();
    let mut changed = p.clone();
    changed.spec.as_mut().unwrap().containers[0].args = Some(vec!["x".into()]);
    let r = sync_pod(&rt, &cfg, &changed, &[], &mut state)
        .await
        .unwrap();
    let calls = rt.take_calls();
    assert_eq!(calls[0], format!("stop:{old}"));
    assert!(
        calls[1].starts_with("create:mk8s_c_p_default_uid-1_1_"),
        "{calls:?}"
    );
    assert_eq!(
        calls.len(),
        3,
        "the infra container is untouched: {calls:?}"
    );
    assert_eq!(r.status.container_statuses.unwrap()[0].restart_count, 1);
}

#[tokio::test]
async fn killing_a_pod_stops_apps_before_infra_and_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let rt = HollowRuntime::new();
    let cfg = config(dir.path());
    let mut p = pod("Always", "busybox");
    p.spec.as_mut().unwrap().volumes = Some(vec![serde_json::from_value(
        json!({"name": "scratch", "emptyDir": {}}),
    )
    .unwrap()]);
    p.spec.as_mut().unwrap().containers[0].volume_mounts = Some(vec![serde_json::from_value(
        json!({"name": "scratch", "mountPath": "/s"}),
    )
    .unwrap()]);
    let mut state = PodState::default();
    sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    let scratch = crate::pod::empty_dir_path(dir.path(), "uid-1", "scratch");
    assert!(scratch.is_dir());
    let app = app_id(&rt);
    rt.take_calls();
    kill_pod(&rt, "uid-1", Some(Duration::from_secs(1)), dir.path())
        .await
        .unwrap();
    let calls = rt.take_calls();
    assert_eq!(calls[0], format!("stop:{app}"));
    assert!(calls[1].starts_with("stop:") && calls[1] != calls[0]);
    assert_eq!(calls.iter().filter(|c| c.starts_with("remove:")).count(), 2);
    assert!(rt.list_pod_containers(None).await.unwrap().is_empty());
    assert!(!scratch.exists());
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let (_dir, rt, cfg, mut state) = hollow();
    let mut p = pod("Always", "busybox");
    p.spec.as_mut().unwrap().containers[0].liveness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["cat", "/ok"]}, "failureThreshold": 2}))
            .unwrap(),
    );
    sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    let first = app_id(&rt);
    // Healthy: probed, nothing else.
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert!(r.wake_at.is_some());
    assert_eq!(
        rt.take_calls().last().unwrap(),
        &format!("exec:{first}:cat /ok")
    );
    rt.set_exec_exit_code(1);
    // Not due again within its period (10 s).
    tokio::time::advance(Duration::from_secs(9)).await;
    sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert!(rt.take_calls().iter().all(|c| !c.starts_with("exec:")));
    // Two failures in a row, a period apart.
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(1)).await;
        sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
    }
    let calls = rt.take_calls();
    assert!(calls.contains(&format!("stop:{first}")), "{calls:?}");
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_ne!(app_id(&rt), first);
    assert_eq!(r.status.container_statuses.unwrap()[0].restart_count, 1);
}

/// One pull-policy case: the policy and image, whether the runtime has the
/// image, and what the kubelet must do.
struct PullCase {
    what: &'static str,
    policy: Option<&'static str>,
    image: &'static str,
    present: bool,
    pulls: bool,
    waiting: Option<&'static str>,
    events: &'static [&'static str],
}

#[tokio::test]
async fn the_pull_policy_decides_whether_to_pull_and_the_events_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let started = &["Pulled:c", "Created:c", "Started:c"];
    let cases = [
        PullCase {
            what: "present and IfNotPresent: no pull",
            policy: Some("IfNotPresent"),
            image: "img:latest",
            present: true,
            pulls: false,
            waiting: None,
            events: started,
        },
        PullCase {
            what: "unset on a :latest image means Always (as the apiserver defaults it)",
            policy: None,
            image: "img:latest",
            present: true,
            pulls: true,
            waiting: None,
            events: &["Pulling:c", "Pulled:c", "Created:c", "Started:c"],
        },
        PullCase {
            what: "unset on a versioned tag means IfNotPresent",
            policy: None,
            image: "img:v1",
            present: true,
            pulls: false,
            waiting: None,
            events: started,
        },
        PullCase {
            what: "Never with an absent image: ErrImageNeverPull, no pull",
            policy: Some("Never"),
            image: "gone:v1",
            present: false,
            pulls: false,
            waiting: Some("ErrImageNeverPull"),
            events: &["ErrImageNeverPull:c"],
        },
        PullCase {
            what: "Always with a failed pull fails the container, and says why",
            policy: Some("Always"),
            image: "gone:v1",
            present: false,
            pulls: true,
            waiting: Some("ErrImagePull"),
            events: &["Pulling:c", "Failed:c", "Failed:c"],
        },
    ];
    for case in cases {
        let what = case.what;
        let rt = HollowRuntime::new();
        if !case.present {
            rt.set_image_missing(case.image);
        }
        let mut p = pod("Always", case.image);
        p.spec.as_mut().unwrap().containers[0].image_pull_policy = case.policy.map(str::to_string);
        let mut state = PodState::default();
        let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
        let pulled = rt.take_calls().iter().any(|c| c.starts_with("pull:"));
        assert_eq!(pulled, case.pulls, "{what}: pulled");
        assert_eq!(
            waiting_reason(&r.status).as_deref(),
            case.waiting,
            "{what}: waiting reason"
        );
        assert_eq!(reasons(&mut state), case.events, "{what}: events");
        if case.waiting.is_some() {
            assert!(
                rt.containers()
                    .iter()
                    .all(|c| c.container_name() == INFRA_CONTAINER_NAME),
                "{what}: an app container was created"
            );
        }
    }
}

fn ready(status: &PodStatus) -> (bool, String) {
    let container = status.container_statuses.as_ref().unwrap()[0].ready;
    let condition = status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .status
        .clone();
    (container, condition)
}

#[tokio::test(start_paused = true)]
async fn a_readiness_probe_drives_ready_without_restarting_the_container() {
    let (_dir, rt, cfg, mut state) = hollow();
    let mut p = pod("Always", "busybox");
    p.spec.as_mut().unwrap().containers[0].readiness_probe = Some(
        serde_json::from_value(json!({"exec": {"command": ["cat", "/ready"]},
            "initialDelaySeconds": 2, "periodSeconds": 1,
            "failureThreshold": 2, "successThreshold": 2}))
        .unwrap(),
    );
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(
        ready(&r.status),
        (false, "False".into()),
        "not ready before the initial delay"
    );
    let first = app_id(&rt);
    // The first probe is due after the initial delay: the worker is woken then.
    let wake = r.wake_at.unwrap();
    assert!(wake > tokio::time::Instant::now() + Duration::from_secs(1));
    assert!(wake <= tokio::time::Instant::now() + Duration::from_secs(2));
    tokio::time::advance(wake - tokio::time::Instant::now()).await;
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert!(!ready(&r.status).0, "one success of the two needed");
    tokio::time::advance(Duration::from_secs(1)).await;
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(ready(&r.status), (true, "True".into()));
    // Failing probes: still ready after one, not ready after two.
    rt.set_exec_exit_code(1);
    tokio::time::advance(Duration::from_secs(1)).await;
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert!(ready(&r.status).0);
    tokio::time::advance(Duration::from_secs(1)).await;
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert_eq!(ready(&r.status), (false, "False".into()));
    assert!(reasons(&mut state).contains(&"Unhealthy:c".to_string()));
    // A probe not yet due is not run again; the container is never restarted.
    let r = sync_pod(&rt, &cfg, &p, &[], &mut state).await.unwrap();
    assert!(!ready(&r.status).0);
    assert_eq!(app_id(&rt), first);
    let cs = &r.status.container_statuses.unwrap()[0];
    assert_eq!(cs.restart_count, 0);
    assert_eq!(cs.started, Some(true));
    assert_eq!(r.status.phase.as_deref(), Some("Running"));
}

/// Issue 12: while a crash-looping container backs off, the status's
/// `lastState.terminated` names the one instance the kubelet kept, so
/// `logs --previous` (and the plain request) read it.
#[tokio::test(start_paused = true)]
async fn during_back_off_the_log_requests_read_the_kept_dead_instance() {
    let dir = tempfile::tempdir().unwrap();
    let rt = HollowRuntime::new();
    let cfg = paused_config(dir.path());
    let p = pod("Always", "busybox");
    let mut state = PodState::default();
    let r = crash_twice(&rt, &cfg, &p, &mut state, &PausedClock::new()).await;
    let running = app_id(&rt);
    let kept: Vec<String> = rt
        .containers()
        .iter()
        .filter(|c| c.container_name() == "c")
        .map(|c| c.id.clone())
        .collect();
    assert_eq!(kept, std::slice::from_ref(&running));
    let statuses = r.status.container_statuses.unwrap();
    for previous in [true, false] {
        let id = crate::server::log_instance(statuses.first(), "p", "c", previous);
        assert_eq!(id.as_deref(), Ok(running.as_str()), "previous={previous}");
    }
}

/// A pod reading ConfigMap `cm` and Secret `s` through `env`, `envFrom`
/// and two volumes.
fn config_pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "uid-1"},
        "spec": {"containers": [{"name": "c", "image": "img", "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}}],
            "envFrom": [{"prefix": "CM_", "configMapRef": {"name": "cm"}}],
            "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"},
                             {"name": "sec", "mountPath": "/etc/sec"}]}],
          "volumes": [{"name": "conf", "configMap": {"name": "cm",
                          "items": [{"key": "color", "path": "sub/color"}]}},
                      {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}}]}
    }))
    .unwrap()
}

#[tokio::test]
async fn config_maps_and_secrets_reach_env_and_volumes_and_a_missing_one_waits() {
    let dir = tempfile::tempdir().unwrap();
    let rt = HollowRuntime::new();
    let cfg = config(dir.path());
    let objects = StaticObjects::new();
    let p = config_pod();
    let mut state = PodState::default();
    // Nothing exists yet: the app container waits, with one Failed event.
    let r = sync_with(&rt, &objects, &cfg, &p, &[], &mut state, Now::current())
        .await
        .unwrap();
    let cs = &r.status.container_statuses.unwrap()[0];
    let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(
        waiting.reason.as_deref(),
        Some("CreateContainerConfigError")
    );
    // envFrom comes first, as in Kubernetes.
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"cm\" not found")
    );
    let events: Vec<_> = state.events.drain(..).collect();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.kind, e.reason, e.message.as_str()))
            .collect::<Vec<_>>(),
        [("Warning", "Failed", "Error: configmap \"cm\" not found")]
    );
    assert!(!rt
        .take_calls()
        .iter()
        .any(|c| c.starts_with("create:mk8s_c_")));
    // Still missing: no second event.
    sync_with(&rt, &objects, &cfg, &p, &[], &mut state, Now::current())
        .await
        .unwrap();
    assert_eq!(state.events, vec![]);
    // Both appear: the container starts with the variables and mounts.
    objects.set(
        crate::objects::Kind::ConfigMap,
        "default",
        "cm",
        &[("color", "blue"), ("bad key", "x")],
    );
    objects.set(
        crate::objects::Kind::Secret,
        "default",
        "s",
        &[("password", "hunter2")],
    );
    let r = sync_with(&rt, &objects, &cfg, &p, &[], &mut state, Now::current())
        .await
        .unwrap();
    assert_eq!(r.status.phase.as_deref(), Some("Running"));
    let created = rt.config(&app_id(&rt)).unwrap();
    assert!(
        created.env.contains(&"PW=hunter2".to_string()),
        "{:?}",
        created.env
    );
    assert!(created.env.contains(&"CM_color=blue".to_string()));
    assert!(!created.env.iter().any(|e| e.starts_with("CM_bad key")));
    let vols = dir.path().join("pods/uid-1/volumes");
    let conf = vols.join("kubernetes.io~configmap/conf");
    let sec = vols.join("kubernetes.io~secret/sec");
    assert_eq!(
        created.binds,
        [
            format!("{}:/etc/conf:ro", conf.display()),
            format!("{}:/etc/sec:ro", sec.display())
        ]
    );
    assert_eq!(
        std::fs::read_to_string(conf.join("sub/color")).unwrap(),
        "blue"
    );
    assert_eq!(
        std::fs::read_to_string(sec.join("password")).unwrap(),
        "hunter2"
    );
    let reasons: Vec<_> = state.events.iter().map(|e| e.reason).collect();
    assert!(
        reasons.contains(&"InvalidEnvironmentVariableNames"),
        "{reasons:?}"
    );
    // No event carries a Secret's value.
    assert!(!state.events.iter().any(|e| e.message.contains("hunter2")));
    state.events.clear();
    rt.take_calls();
    // An edit reaches the volume at the next sync; the container is left alone.
    objects.set(
        crate::objects::Kind::ConfigMap,
        "default",
        "cm",
        &[("color", "green")],
    );
    sync_with(&rt, &objects, &cfg, &p, &[], &mut state, Now::current())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(conf.join("sub/color")).unwrap(),
        "green"
    );
    assert_eq!(rt.take_calls(), Vec::<String>::new());
}
