//! The plan as a table: observed containers + spec + the worker's memory +
//! the time → actions. No runtime, no clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use tokio::time::Instant;

use super::{group, kill, plan, Action, KillPlan, Now, CREATE_CONTAINER_CONFIG_ERROR};
use crate::objects::{Data, Fetched, Kind, PodObjects};
use crate::pod::{container_hash, Backoff, PodState, SyncConfig};
use crate::runtime::{
    ContainerInfo, ContainerState, INFRA_CONTAINER_NAME, LABEL_CONTAINER_NAME, LABEL_GRACE_PERIOD,
    LABEL_RESTART_COUNT, LABEL_SPEC_HASH,
};

const BASE: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(30);
/// Stands for the hash of the case's own container spec.
const SAME_SPEC: &str = "same";

fn cfg() -> SyncConfig {
    SyncConfig {
        node_name: "n1".into(),
        host_ip: "127.0.0.1".into(),
        infra_image: "pause".into(),
        root_dir: "/nonexistent".into(),
        backoff_base: BASE,
        backoff_max: Duration::from_secs(300),
        backoff_reset: Duration::from_secs(600),
        extra_labels: BTreeMap::default(),
        dns: crate::dns::ClusterDns::default(),
    }
}

/// A pod with one container `c` (plus `probe` as its liveness probe).
fn pod(policy: &str, liveness: bool) -> Pod {
    let mut c = json!({"name": "c", "image": "img:v1"});
    if liveness {
        c["livenessProbe"] = json!({"exec": {"command": ["true"]}});
    }
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"restartPolicy": policy, "containers": [c]}
    }))
    .unwrap()
}

/// The fixed instant every case is planned at.
fn now() -> Now {
    Now {
        wall: "2026-12-06T05:00:00Z".parse().unwrap(),
        mono: Instant::now(),
    }
}

fn ago(secs: i64) -> jiff::Timestamp {
    now().wall - jiff::SignedDuration::from_secs(secs)
}

/// A container of `name`, instance `restart`, in `state`; an exited one
/// ran from 100 s before `finished` (seconds ago) until then.
fn container(
    id: &str,
    name: &str,
    restart: i32,
    state: ContainerState,
    finished: i64,
) -> ContainerInfo {
    let mut labels = BTreeMap::from([
        (LABEL_CONTAINER_NAME.to_string(), name.to_string()),
        (LABEL_RESTART_COUNT.to_string(), restart.to_string()),
        (LABEL_GRACE_PERIOD.to_string(), "7".to_string()),
    ]);
    if name != INFRA_CONTAINER_NAME {
        // The case's own spec hash (see the runner).
        labels.insert(LABEL_SPEC_HASH.into(), SAME_SPEC.into());
    }
    let exited = state == ContainerState::Exited;
    ContainerInfo {
        id: id.into(),
        labels,
        state,
        image: "img:v1".into(),
        image_id: "sha256:img".into(),
        exit_code: 0,
        oom_killed: false,
        created_at: Some(ago(finished + 100)),
        started_at: Some(ago(finished + 100)),
        finished_at: exited.then(|| ago(finished)),
        ip: (name == INFRA_CONTAINER_NAME).then(|| "10.244.0.5".into()),
    }
}

fn infra() -> ContainerInfo {
    container("infra", INFRA_CONTAINER_NAME, 0, ContainerState::Running, 0)
}

fn running(id: &str, restart: i32) -> ContainerInfo {
    container(id, "c", restart, ContainerState::Running, 0)
}

/// Exited with `code`, `secs` ago.
fn exited(id: &str, restart: i32, code: i64, secs: i64) -> ContainerInfo {
    let mut c = container(id, "c", restart, ContainerState::Exited, secs);
    c.exit_code = code;
    c
}

fn with_crash_delay(delay: Duration) -> PodState {
    let mut state = PodState::default();
    state.crash_delay.insert("c".into(), delay);
    state
}

fn stop(id: &str) -> Action {
    Action::Stop {
        id: id.into(),
        grace: GRACE,
    }
}

fn start(restart: i32) -> Action {
    Action::Start {
        name: "c".into(),
        restart,
    }
}

fn set_delay(delay: Duration) -> Action {
    Action::SetCrashDelay {
        name: "c".into(),
        delay,
    }
}

struct Case {
    name: &'static str,
    pod: Pod,
    observed: Vec<ContainerInfo>,
    state: PodState,
    actions: Vec<Action>,
    /// Seconds from now the worker wants to be woken, if at all.
    wake_in: Option<u64>,
    done: bool,
}

fn case(name: &'static str, pod: Pod, observed: Vec<ContainerInfo>, actions: Vec<Action>) -> Case {
    Case {
        name,
        pod,
        observed,
        state: PodState::default(),
        actions,
        wake_in: None,
        done: false,
    }
}

impl Case {
    /// The pod is done (nothing will run again).
    fn done(self) -> Self {
        Self { done: true, ..self }
    }

    /// Planned from `state` rather than a fresh one.
    fn with_state(self, state: PodState) -> Self {
        Self { state, ..self }
    }

    /// The worker wants to be woken in `seconds`.
    fn waking_in(self, seconds: u64) -> Self {
        Self {
            wake_in: Some(seconds),
            ..self
        }
    }
}

/// The infra container stopped without a grace period.
fn stop_infra_now() -> Action {
    Action::Stop {
        id: "infra".into(),
        grace: Duration::ZERO,
    }
}

fn crash_loop_back_off(announce: bool) -> Action {
    Action::CrashLoopBackOff {
        name: "c".into(),
        delay: BASE,
        announce,
    }
}

/// Container c's image pull backing off until `until`, waiting with
/// `reason` and `message`.
fn pull_backing_off(until: Instant, reason: &str, message: &str) -> PodState {
    let mut s = PodState::default();
    s.pull_backoff
        .insert("c".into(), Backoff { delay: BASE, until });
    s.waiting
        .insert("c".into(), (reason.into(), message.into()));
    s
}

#[test]
fn the_plan_as_a_table() {
    let now = now();
    let mut changed = pod("Always", false);
    changed.spec.as_mut().unwrap().containers[0].args = Some(vec!["x".into()]);
    let cases = vec![
        case(
            "converged: nothing to do",
            pod("Always", false),
            vec![infra(), running("c1", 0)],
            vec![],
        ),
        case(
            "converged with a liveness probe: only the probe",
            pod("Always", true),
            vec![infra(), running("c1", 0)],
            vec![Action::Liveness {
                name: "c".into(),
                id: "c1".into(),
            }],
        ),
        case(
            "a new pod: infra container, then the app",
            pod("Always", false),
            vec![],
            vec![Action::CreateInfra { restart: 0 }, start(0)],
        ),
        case(
            "infra container gone: the apps are stopped and recreated in a new one",
            pod("Always", true),
            vec![
                container("old", INFRA_CONTAINER_NAME, 0, ContainerState::Exited, 5),
                running("c1", 0),
            ],
            vec![
                stop("c1"),
                Action::Remove { id: "old".into() },
                Action::CreateInfra { restart: 1 },
                start(1),
            ],
        ),
        case(
            "spec changed (hash): stop the container, start it again",
            changed,
            vec![infra(), {
                let mut c = running("c1", 0);
                let old = &pod("Always", false).spec.unwrap().containers[0];
                c.labels.insert(LABEL_SPEC_HASH.into(), container_hash(old));
                c
            }],
            vec![
                Action::StopChanged {
                    name: "c".into(),
                    id: "c1".into(),
                    grace: GRACE,
                },
                start(1),
            ],
        ),
        case(
            "older dead instances are removed, the newest kept",
            pod("Always", false),
            vec![
                infra(),
                running("c3", 2),
                exited("c2", 1, 1, 50),
                exited("c1", 0, 1, 90),
            ],
            vec![
                Action::Remove { id: "c2".into() },
                Action::Remove { id: "c1".into() },
            ],
        ),
        case(
            "exited 0 under Always: restarted, first back-off remembered",
            pod("Always", false),
            vec![infra(), exited("c1", 0, 0, 1)],
            vec![set_delay(BASE), start(1)],
        ),
        case(
            "exited 1 under OnFailure: restarted",
            pod("OnFailure", false),
            vec![infra(), exited("c1", 0, 1, 1)],
            vec![set_delay(BASE), start(1)],
        ),
        case(
            "exited 0 under OnFailure: done, the infra container stops at once",
            pod("OnFailure", false),
            vec![infra(), exited("c1", 0, 0, 1)],
            vec![stop_infra_now()],
        )
        .done(),
        case(
            "exited 1 under Never: done",
            pod("Never", false),
            vec![infra(), exited("c1", 0, 1, 1)],
            vec![stop_infra_now()],
        )
        .done(),
        case(
            "done and its infra container already stopped: nothing",
            pod("Never", false),
            vec![
                container("infra", INFRA_CONTAINER_NAME, 0, ContainerState::Exited, 1),
                exited("c1", 0, 1, 1),
            ],
            vec![],
        )
        .done(),
        case(
            "back-off not yet over: CrashLoopBackOff, woken when it ends",
            pod("Always", false),
            vec![infra(), exited("c1", 1, 1, 4)],
            vec![crash_loop_back_off(true)],
        )
        .with_state(with_crash_delay(BASE))
        .waking_in(6),
        case(
            "still backing off: no second BackOff event",
            pod("Always", false),
            vec![infra(), exited("c1", 1, 1, 4)],
            vec![crash_loop_back_off(false)],
        )
        .with_state({
            let mut s = with_crash_delay(BASE);
            s.waiting
                .insert("c".into(), ("CrashLoopBackOff".into(), String::new()));
            s
        })
        .waking_in(6),
        case(
            "back-off over: restarted, the next one doubled",
            pod("Always", false),
            vec![infra(), exited("c1", 1, 1, 11)],
            vec![set_delay(2 * BASE), start(2)],
        )
        .with_state(with_crash_delay(BASE)),
        case(
            "back-off at its cap stays there",
            pod("Always", false),
            vec![infra(), exited("c1", 5, 1, 301)],
            vec![set_delay(Duration::from_secs(300)), start(6)],
        )
        .with_state(with_crash_delay(Duration::from_secs(300))),
        case(
            "a container that ran past backoff_reset starts over at the base delay",
            pod("Always", false),
            vec![infra(), {
                let mut c = exited("c1", 5, 1, 1);
                c.started_at = Some(ago(700));
                c
            }],
            vec![set_delay(BASE), start(6)],
        )
        .with_state(with_crash_delay(Duration::from_secs(300))),
        case(
            "image pull backing off: ImagePullBackOff, no start",
            pod("Always", false),
            vec![infra()],
            vec![Action::ImagePullBackOff {
                name: "c".into(),
                announce: true,
            }],
        )
        .with_state(pull_backing_off(
            now.mono + Duration::from_secs(8),
            "ErrImagePull",
            "no such image",
        ))
        .waking_in(8),
        case(
            "ErrImageNeverPull stays the reason while it backs off",
            pod("Always", false),
            vec![infra()],
            vec![],
        )
        .with_state(pull_backing_off(
            now.mono + Duration::from_secs(8),
            "ErrImageNeverPull",
            "",
        ))
        .waking_in(8),
        case(
            "image pull back-off over: started (pulled) again",
            pod("Always", false),
            vec![infra()],
            vec![start(0)],
        )
        .with_state({
            let mut s = PodState::default();
            s.pull_backoff.insert(
                "c".into(),
                Backoff {
                    delay: BASE,
                    until: now.mono,
                },
            );
            s
        }),
    ];
    let mut failures = Vec::new();
    for mut c in cases {
        let hash = container_hash(&c.pod.spec.as_ref().unwrap().containers[0]);
        for o in &mut c.observed {
            if o.label(LABEL_SPEC_HASH) == Some(SAME_SPEC) {
                o.labels.insert(LABEL_SPEC_HASH.into(), hash.clone());
            }
        }
        let planned = plan(
            &c.pod,
            &group(c.observed),
            &PodObjects::default(),
            &c.state,
            &cfg(),
            now,
        );
        let wake_in = planned
            .wake_at
            .map(|w| w.duration_since(now.mono).as_secs());
        if (&planned.actions, wake_in, planned.done) != (&c.actions, c.wake_in, c.done) {
            failures.push(format!(
                "{}:\n  planned {:?} wake_in {wake_in:?} done {}\n  wanted  {:?} wake_in {:?} done {}",
                c.name, planned.actions, planned.done, c.actions, c.wake_in, c.done
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_deleted_pod_is_killed_apps_first_then_infra_then_removed() {
    let observed = vec![infra(), running("c2", 1), exited("c1", 0, 1, 30)];
    assert_eq!(
        kill(&observed, Some(Duration::from_secs(2))),
        KillPlan {
            stop_apps: vec![("c2".into(), Duration::from_secs(2))],
            stop_infra: vec![("infra".into(), Duration::from_secs(2))],
            remove: vec!["c2".into(), "c1".into(), "infra".into()],
        }
    );
    // Gone from the API (no grace known): each container's own label.
    assert_eq!(
        kill(&observed, None).stop_apps,
        [("c2".to_string(), Duration::from_secs(7))]
    );
    // Nothing left: nothing to do.
    assert_eq!(kill(&[], None), KillPlan::default());
}

/// Pod `p` whose container reads `cm` (key `k`) as a variable and mounts
/// Secret `s` as volume `v`; `optional` marks both references.
fn pod_with_refs(optional: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"containers": [{"name": "c", "image": "img:v1",
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef":
                {"name": "cm", "key": "k", "optional": optional}}}],
            "volumeMounts": [{"name": "v", "mountPath": "/s"}]}],
          "volumes": [{"name": "v", "secret": {"secretName": "s", "optional": optional}}]}
    }))
    .unwrap()
}

/// An object's kind, name and string data.
type Entry<'a> = (Kind, &'a str, &'a [(&'a str, &'a str)]);

fn found(entries: &[Entry<'_>]) -> PodObjects {
    let mut o = PodObjects::default();
    for (kind, name, data) in entries {
        let data = Data(
            data.iter()
                .map(|(k, v)| ((*k).to_string(), v.as_bytes().to_vec()))
                .collect(),
        );
        o.0.insert((*kind, (*name).into()), Fetched::Found(Arc::new(data)));
    }
    o
}

fn config_error(message: &str, announce: bool) -> Action {
    Action::ConfigError {
        name: "c".into(),
        message: message.into(),
        announce,
    }
}

#[test]
fn a_missing_config_map_secret_or_key_is_create_container_config_error() {
    let plan_of = |p: &Pod, o: &PodObjects, state: &PodState| {
        plan(p, &group(vec![infra()]), o, state, &cfg(), now()).actions
    };
    let fresh = PodState::default();
    let p = pod_with_refs(false);
    // Nothing exists: the variable's ConfigMap is reported first.
    assert_eq!(
        plan_of(&p, &PodObjects::default(), &fresh),
        [config_error("configmap \"cm\" not found", true)]
    );
    // Already waiting for the same reason: no second event.
    let mut waiting = PodState::default();
    waiting.waiting.insert(
        "c".into(),
        (
            CREATE_CONTAINER_CONFIG_ERROR.into(),
            "configmap \"cm\" not found".into(),
        ),
    );
    assert_eq!(
        plan_of(&p, &PodObjects::default(), &waiting),
        [config_error("configmap \"cm\" not found", false)]
    );
    // The ConfigMap without the key.
    let no_key = found(&[(Kind::ConfigMap, "cm", &[("other", "1")])]);
    assert_eq!(
        plan_of(&p, &no_key, &fresh),
        [config_error(
            "couldn't find key k in ConfigMap default/cm",
            true
        )]
    );
    // The key, but no Secret for the volume: nothing projected either.
    let no_secret = found(&[(Kind::ConfigMap, "cm", &[("k", "1")])]);
    assert_eq!(
        plan_of(&p, &no_secret, &fresh),
        [config_error("secret \"s\" not found", true)]
    );
    // Everything there: the volume is written, then the container starts.
    let all = found(&[
        (Kind::ConfigMap, "cm", &[("k", "1")]),
        (Kind::Secret, "s", &[("pw", "x")]),
    ]);
    let actions = plan_of(&p, &all, &fresh);
    assert!(
        matches!(&actions[..], [Action::Project { volume, kind: Kind::Secret, files }, Action::Start { .. }]
            if volume == "v" && files.len() == 1 && files[0].path == "pw"),
        "{actions:?}"
    );
    // Optional references to nothing: an empty volume, and the container starts.
    let actions = plan_of(&pod_with_refs(true), &PodObjects::default(), &fresh);
    assert!(
        matches!(&actions[..], [Action::Project { files, .. }, Action::Start { .. }] if files.is_empty()),
        "{actions:?}"
    );
}

#[test]
fn a_running_container_is_left_alone_when_its_config_map_goes_away() {
    // Kubernetes checks references only when it creates a container.
    let mut p = pod_with_refs(false);
    p.spec.as_mut().unwrap().containers[0].volume_mounts = None;
    p.spec.as_mut().unwrap().volumes = None;
    let mut c = running("c1", 0);
    c.labels.insert(
        LABEL_SPEC_HASH.into(),
        container_hash(&p.spec.as_ref().unwrap().containers[0]),
    );
    let planned = plan(
        &p,
        &group(vec![infra(), c]),
        &PodObjects::default(),
        &PodState::default(),
        &cfg(),
        now(),
    );
    assert_eq!(planned.actions, vec![]);
}
