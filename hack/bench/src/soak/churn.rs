//! The steady churn: in each namespace, every tick, a bare pod and a
//! service are created and the oldest beyond a cap deleted, one RC is
//! scaled, and now and then an RC is created and an old one retired
//! (scaled to 0, deleted a round later: there is no garbage collector to
//! take its pods). Every write and its answer goes into the [`Ledger`];
//! at the end every object whose create was acknowledged and that was not
//! deleted must still be there, with the last acknowledged replica count.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Bare pods kept per namespace before the oldest is deleted.
const BARE_PODS: usize = 20;
/// Services kept per namespace.
const SERVICES: usize = 10;
/// Live RCs per namespace (plus one being retired).
const RCS: usize = 4;
/// An RC is created (and the oldest retired) every this many ticks.
const RC_EVERY: u64 = 10;
/// Largest replica count a scale picks.
const MAX_REPLICAS: u64 = 6;
/// How long one write may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Service,
    Rc,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Rc => "replicationcontrollers",
        }
    }
}

/// What is known of one object the churn wrote.
#[derive(Clone, Debug, Default)]
struct Entry {
    created: bool,
    /// A delete was sent (acknowledged or not): the object may be gone.
    delete_sent: bool,
    /// The last acknowledged `spec.replicas` (RCs), and whether a scale
    /// after it went unanswered (then the value is not known).
    replicas: Option<u64>,
    replicas_unknown: bool,
}

/// Every write of the churn and what came back.
#[derive(Default)]
pub struct Ledger {
    objects: BTreeMap<(Kind, String, String), Entry>,
    pub writes: BTreeMap<&'static str, u64>,
    pub failed: BTreeMap<&'static str, u64>,
    pub first_failure: Option<String>,
}

/// The end check.
#[derive(Debug, Default)]
pub struct Check {
    /// Entries and bytes drained from the hollow runtimes' call logs
    /// (`None`: left to grow, `--keep-hollow-call-logs`).
    pub drained: Option<(u64, u64)>,
    pub hollow_pods: usize,
    pub hollow_containers: usize,
    pub bound_pods: usize,
    pub checked: usize,
    pub lost: Vec<String>,
    pub wrong_replicas: Vec<String>,
}

impl Ledger {
    fn note(&mut self, what: &'static str, outcome: &Result<StatusCode>) -> bool {
        match outcome {
            Ok(status) if status.is_success() => {
                *self.writes.entry(what).or_default() += 1;
                true
            }
            other => {
                *self.failed.entry(what).or_default() += 1;
                if self.first_failure.is_none() {
                    self.first_failure = Some(match other {
                        Ok(status) => format!("{what}: {status}"),
                        Err(e) => format!("{what}: {e:#}"),
                    });
                }
                false
            }
        }
    }

    /// Objects whose create was acknowledged and that no delete was sent to.
    fn kept(&self) -> impl Iterator<Item = (&(Kind, String, String), &Entry)> {
        self.objects
            .iter()
            .filter(|(_, e)| e.created && !e.delete_sent)
    }
}

/// The churn of one namespace, with its own ledger: namespaces churn
/// concurrently, so that slow answers in one do not slow the rate of all.
struct Namespace {
    name: String,
    http: reqwest::Client,
    url: String,
    pods: VecDeque<String>,
    services: VecDeque<String>,
    rcs: VecDeque<String>,
    retiring: Option<String>,
    ledger: Ledger,
}

impl Namespace {
    /// One round: `n` numbers it, `salt` varies the scale walk per namespace.
    async fn tick(&mut self, n: u64, salt: u64) {
        let pod = format!("bare-{n}");
        if self.create(Kind::Pod, &pod, pod_body(&pod)).await {
            self.pods.push_back(pod);
        }
        if self.pods.len() > BARE_PODS {
            if let Some(old) = self.pods.pop_front() {
                self.delete(Kind::Pod, &old).await;
            }
        }
        let svc = format!("svc-{n}");
        if self.create(Kind::Service, &svc, service_body(&svc)).await {
            self.services.push_back(svc);
        }
        if self.services.len() > SERVICES {
            if let Some(old) = self.services.pop_front() {
                self.delete(Kind::Service, &old).await;
            }
        }
        if !self.rcs.is_empty() {
            let rc = self.rcs[(n + salt) as usize % self.rcs.len()].clone();
            // A fixed pseudo-random walk: the same run every time.
            let replicas = (n * 7 + salt * 3) % (MAX_REPLICAS + 1);
            self.scale(&rc, replicas).await;
        }
        if n.is_multiple_of(RC_EVERY) {
            if let Some(old) = self.retiring.take() {
                self.delete(Kind::Rc, &old).await;
            }
            self.create_rc(n).await;
            if self.rcs.len() > RCS {
                if let Some(old) = self.rcs.pop_front() {
                    self.scale(&old, 0).await;
                    self.retiring = Some(old);
                }
            }
        }
    }

    async fn create_rc(&mut self, n: u64) {
        let rc = format!("rc-{n}-{}", self.rcs.len());
        if self.create(Kind::Rc, &rc, rc_body(&rc, 2)).await {
            self.rcs.push_back(rc);
        }
    }

    fn object_url(&self, kind: Kind, name: &str) -> String {
        format!(
            "{}/api/v1/namespaces/{}/{}/{name}",
            self.url,
            self.name,
            kind.resource()
        )
    }

    async fn create(&mut self, kind: Kind, name: &str, body: Value) -> bool {
        let url = format!(
            "{}/api/v1/namespaces/{}/{}",
            self.url,
            self.name,
            kind.resource()
        );
        let outcome = status_of(self.http.post(url).json(&body).send().await);
        let ok = self.ledger.note(create_label(kind), &outcome);
        let key = (kind, self.name.clone(), name.to_string());
        let entry = self.ledger.objects.entry(key).or_default();
        // An unanswered create may or may not have happened: it is not
        // acknowledged, so it is not checked.
        entry.created = ok;
        if ok && kind == Kind::Rc {
            entry.replicas = body["spec"]["replicas"].as_u64();
        }
        ok
    }

    async fn delete(&mut self, kind: Kind, name: &str) {
        let outcome = status_of(self.http.delete(self.object_url(kind, name)).send().await);
        self.ledger.note(delete_label(kind), &outcome);
        let key = (kind, self.name.clone(), name.to_string());
        if let Some(entry) = self.ledger.objects.get_mut(&key) {
            entry.delete_sent = true;
        }
    }

    async fn scale(&mut self, name: &str, replicas: u64) {
        let outcome = status_of(
            self.http
                .patch(self.object_url(Kind::Rc, name))
                .header("content-type", "application/merge-patch+json")
                .body(json!({"spec": {"replicas": replicas}}).to_string())
                .send()
                .await,
        );
        let ok = self.ledger.note("scale rc", &outcome);
        let key = (Kind::Rc, self.name.clone(), name.to_string());
        if let Some(entry) = self.ledger.objects.get_mut(&key) {
            if ok {
                entry.replicas = Some(replicas);
                entry.replicas_unknown = false;
            } else {
                entry.replicas_unknown = true;
            }
        }
    }
}

pub struct Churn {
    http: reqwest::Client,
    url: String,
    namespaces: Vec<Namespace>,
    pub rounds: u64,
}

impl Churn {
    /// Creates the namespaces and their first RCs.
    pub async fn new(url: &str, namespaces: usize) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("building an HTTP client")?;
        let mut churn = Self {
            http: http.clone(),
            url: url.to_string(),
            namespaces: (0..namespaces)
                .map(|i| Namespace {
                    name: format!("soak-{i}"),
                    http: http.clone(),
                    url: url.to_string(),
                    pods: VecDeque::new(),
                    services: VecDeque::new(),
                    rcs: VecDeque::new(),
                    retiring: None,
                    ledger: Ledger::default(),
                })
                .collect(),
            rounds: 0,
        };
        for ns in &mut churn.namespaces {
            let body =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns.name}});
            crate::cluster::create(&http, &format!("{url}/api/v1/namespaces"), &body).await?;
            for _ in 0..RCS {
                ns.create_rc(0).await;
            }
        }
        Ok(churn)
    }

    /// One round in every namespace at once.
    pub async fn tick(&mut self) {
        self.rounds += 1;
        let n = self.rounds;
        futures::future::join_all(
            self.namespaces
                .iter_mut()
                .enumerate()
                .map(|(i, ns)| ns.tick(n, i as u64)),
        )
        .await;
    }

    /// Every namespace's ledger, merged.
    pub fn ledger(&self) -> Ledger {
        let mut all = Ledger::default();
        for ns in &self.namespaces {
            let l = &ns.ledger;
            all.objects
                .extend(l.objects.iter().map(|(k, v)| (k.clone(), v.clone())));
            for (what, n) in &l.writes {
                *all.writes.entry(what).or_default() += n;
            }
            for (what, n) in &l.failed {
                *all.failed.entry(what).or_default() += n;
            }
            if all.first_failure.is_none() {
                all.first_failure.clone_from(&l.first_failure);
            }
        }
        all
    }

    /// Reads back every object that must exist.
    pub async fn check(&self) -> Result<Check> {
        let mut check = Check::default();
        for ((kind, ns, name), entry) in self.ledger().kept() {
            let url = format!(
                "{}/api/v1/namespaces/{ns}/{}/{name}",
                self.url,
                kind.resource()
            );
            let response = self
                .http
                .get(url)
                .send()
                .await
                .with_context(|| format!("reading {ns}/{name}"))?;
            check.checked += 1;
            let what = format!("{} {ns}/{name}", kind.resource());
            match response.status() {
                StatusCode::NOT_FOUND => check.lost.push(what),
                status if status.is_success() => {
                    let object: Value = response
                        .json()
                        .await
                        .with_context(|| format!("reading {what}"))?;
                    if let (Kind::Rc, Some(want), false) =
                        (kind, entry.replicas, entry.replicas_unknown)
                    {
                        let got = object["spec"]["replicas"].as_u64();
                        if got != Some(want) {
                            check.wrong_replicas.push(format!(
                                "{what}: replicas {got:?}, last acknowledged {want}"
                            ));
                        }
                    }
                }
                status => anyhow::bail!("reading {what}: {status}"),
            }
        }
        Ok(check)
    }

    /// Objects the ledger expects to exist now, by kind.
    pub fn kept_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for ((kind, _, _), _) in self.ledger().kept() {
            *counts.entry(kind.resource()).or_default() += 1;
        }
        counts
    }
}

fn status_of(sent: reqwest::Result<reqwest::Response>) -> Result<StatusCode> {
    Ok(sent.context("no answer")?.status())
}

fn create_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Pod => "create pod",
        Kind::Service => "create service",
        Kind::Rc => "create rc",
    }
}

fn delete_label(kind: Kind) -> &'static str {
    match kind {
        Kind::Pod => "delete pod",
        Kind::Service => "delete service",
        Kind::Rc => "delete rc",
    }
}

fn pod_spec() -> Value {
    json!({
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "pause", "image": "mini-k8s/pause:latest",
            "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}}
        }]
    })
}

fn pod_body(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bare"}},
        "spec": pod_spec()
    })
}

fn service_body(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": "bare"}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

fn rc_body(name: &str, replicas: u64) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec()}
        }
    })
}
