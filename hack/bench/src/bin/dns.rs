//! cluster-dns benchmark: queries per second answered by the `cluster-dns`
//! binary (watching a real apiserver's services) against a stub DNS server
//! answering the same names from memory (hickory's own `ServerFuture` with
//! an `InMemoryAuthority` holding the same records), in the same run, by
//! the same clients. Everything is on loopback: its own etcd and
//! in-process apiserver (`TestCluster`), cluster-dns on a free port, the
//! stub on another. Run through `hack/bench/dns.sh`.
//!
//! Per round, interleaved (stub, cluster-dns): `--clients` tasks, each with
//! its own UDP socket, ask one question at a time (closed loop) for
//! `--seconds`, cycling through the services' names (one in ten a name
//! that does not exist: NXDOMAIN). Rates are medians over `--rounds`;
//! `ratio` = cluster-dns ÷ stub.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::json;
use tokio::time::Instant;

/// Queries per second of cluster-dns against a stub answering from memory.
#[derive(Parser, Debug)]
#[command(name = "dns-bench")]
struct Args {
    /// Services created (each a name asked), at most 200 (the portal range
    /// is a /24).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=200))]
    services: u64,
    /// Concurrent clients, each one question at a time (at most 64).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Seconds each measurement lasts (1..=60).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    seconds: u64,
    /// Rounds (medians are reported), at most 10.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    rounds: u64,
    /// The cluster-dns binary (default: next to this one).
    #[arg(long)]
    cluster_dns: Option<PathBuf>,
}

/// One measurement.
#[derive(Debug, Clone, Copy, Default)]
struct Rate {
    answered: u64,
    timeouts: u64,
    wrong: u64,
    qps: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // The stub gets a runtime of its own, as cluster-dns has a process of
    // its own: the clients' runtime does not also serve.
    let stub_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args, stub_runtime.handle().clone()))
}

async fn run(args: Args, stub_runtime: tokio::runtime::Handle) -> Result<()> {
    let binary = match &args.cluster_dns {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory")?
            .join("cluster-dns"),
    };
    ensure!(binary.is_file(), "{} is missing", binary.display());

    let cluster = TestCluster::start().await?;
    let mut addresses: BTreeMap<String, Ipv4Addr> = BTreeMap::new();
    for i in 0..args.services {
        let name = format!("svc-{i}");
        let (code, body) = cluster
            .post(
                "/api/v1/namespaces/default/services",
                &json!({"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}]}}),
            )
            .await?;
        ensure!(code == 201, "creating {name}: {code} {body}");
        let ip = body["spec"]["clusterIP"]
            .as_str()
            .context("no clusterIP")?
            .parse()?;
        addresses.insert(format!("{name}.default.svc.cluster.local."), ip);
    }

    // cluster-dns, a process of its own on free loopback ports.
    let dns_port = free_udp_port()?;
    let healthz_port = free_udp_port()?;
    let log = tempfile::NamedTempFile::new()?;
    let mut child = tokio::process::Command::new(&binary)
        .args([
            "--master",
            cluster.url(),
            "--dns-bind-address",
            &format!("127.0.0.1:{dns_port}"),
            "--healthz-bind-address",
            &format!("127.0.0.1:{healthz_port}"),
        ])
        .stdin(Stdio::null())
        .stdout(log.reopen()?)
        .stderr(log.reopen()?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let cluster_dns = SocketAddr::from((Ipv4Addr::LOCALHOST, dns_port));
    wait_ready(&cluster, healthz_port, &addresses, cluster_dns).await?;

    // The stub: the same A records, an SOA for the negative answers.
    let stub_socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    let stub = stub_socket.local_addr()?;
    let catalog = stub_catalog(&addresses)?;
    let stub_task = stub_runtime.spawn(async move {
        let mut server = ServerFuture::new(catalog);
        server.register_socket_std(stub_socket)?;
        server.block_until_done().await?;
        anyhow::Ok(())
    });

    let mut names: Vec<(Name, bool)> = Vec::new();
    for (i, name) in addresses.keys().enumerate() {
        names.push((Name::from_str(name)?, true));
        if i % 9 == 8 {
            names.push((
                Name::from_str(&format!("missing-{i}.default.svc.cluster.local."))?,
                false,
            ));
        }
    }
    let names = Arc::new(names);
    println!(
        "{} services, {} names asked (one in ten NXDOMAIN), {} clients, {} s per measurement",
        args.services,
        names.len(),
        args.clients,
        args.seconds
    );
    println!(
        "{:>5} {:>12} {:>14} {:>7} {:>9}",
        "round", "stub q/s", "cluster-dns q/s", "ratio", "timeouts"
    );
    let seconds = Duration::from_secs(args.seconds);
    let (mut stub_rates, mut dns_rates) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        let s = measure(stub, &names, args.clients, seconds).await?;
        let d = measure(cluster_dns, &names, args.clients, seconds).await?;
        ensure!(
            s.wrong == 0 && d.wrong == 0,
            "wrong answers: stub {}, cluster-dns {}",
            s.wrong,
            d.wrong
        );
        println!(
            "{round:>5} {:>12.0} {:>14.0} {:>7.2} {:>4}/{:<4}",
            s.qps,
            d.qps,
            d.qps / s.qps,
            s.timeouts,
            d.timeouts
        );
        stub_rates.push(s.qps);
        dns_rates.push(d.qps);
    }
    let (s, d) = (median(&mut stub_rates), median(&mut dns_rates));
    println!("{:>5} {s:>12.0} {d:>14.0} {:>7.2}", "med", d / s);
    println!("ratio (cluster-dns / stub, medians): {:.2}", d / s);

    stub_task.abort();
    // SIGTERM, then a bounded wait: the bench checks the clean exit too.
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(status)) if status.success() => {}
        other => bail!("cluster-dns did not stop cleanly on SIGTERM: {other:?}"),
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn free_udp_port() -> Result<u16> {
    for _ in 0..20 {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no loopback port free for udp and tcp")
}

/// Until cluster-dns is ready and answers the last service created.
async fn wait_ready(
    cluster: &TestCluster,
    healthz_port: u16,
    addresses: &BTreeMap<String, Ipv4Addr>,
    server: SocketAddr,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (last, ip) = addresses.iter().next_back().context("no services")?;
    loop {
        let ready = cluster
            .http
            .get(format!("http://127.0.0.1:{healthz_port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            let answer = mini_k8s_tests::dns::query_udp(server, last, RecordType::A).await?;
            if mini_k8s_tests::dns::answers(&answer) == [ip.to_string()] {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "cluster-dns not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stub_catalog(addresses: &BTreeMap<String, Ipv4Addr>) -> Result<Catalog> {
    let origin = Name::from_str("cluster.local.")?;
    let mut authority = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
    let soa = SOA::new(
        Name::from_str("ns.dns.cluster.local.")?,
        Name::from_str("hostmaster.cluster.local.")?,
        1,
        7200,
        1800,
        86400,
        5,
    );
    authority.upsert_mut(Record::from_rdata(origin.clone(), 5, RData::SOA(soa)), 1);
    for (name, ip) in addresses {
        authority.upsert_mut(
            Record::from_rdata(Name::from_str(name)?, 5, RData::A(A(*ip))),
            1,
        );
    }
    let mut catalog = Catalog::new();
    let authority: Arc<dyn AuthorityObject> = Arc::new(authority);
    catalog.upsert(LowerName::new(&origin), vec![authority]);
    Ok(catalog)
}

/// `clients` closed-loop clients asking `server` for `seconds`.
async fn measure(
    server: SocketAddr,
    names: &Arc<Vec<(Name, bool)>>,
    clients: u64,
    seconds: Duration,
) -> Result<Rate> {
    let start = Instant::now();
    let deadline = start + seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let names = names.clone();
        tasks.spawn(async move { client(server, &names, c, deadline).await });
    }
    let mut total = Rate::default();
    while let Some(result) = tasks.join_next().await {
        let rate = result??;
        total.answered += rate.answered;
        total.timeouts += rate.timeouts;
        total.wrong += rate.wrong;
    }
    total.qps = total.answered as f64 / start.elapsed().as_secs_f64();
    Ok(total)
}

async fn client(
    server: SocketAddr,
    names: &[(Name, bool)],
    offset: u64,
    deadline: Instant,
) -> Result<Rate> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    socket.connect(server).await?;
    // The questions, encoded once; only the id changes.
    let questions: Vec<(Vec<u8>, bool)> = names
        .iter()
        .map(|(name, exists)| {
            let message =
                mini_k8s_tests::dns::question(0, &name.to_ascii(), RecordType::A)?.to_vec()?;
            anyhow::Ok((message, *exists))
        })
        .collect::<Result<_>>()?;
    let mut rate = Rate::default();
    let mut buffer = vec![0u8; 4096];
    let mut i = usize::try_from(offset).unwrap_or(0) * 7;
    let mut id: u16 = 0;
    while Instant::now() < deadline {
        let (question, exists) = &questions[i % questions.len()];
        i += 1;
        id = id.wrapping_add(1);
        let mut question = question.clone();
        question[..2].copy_from_slice(&id.to_be_bytes());
        socket.send(&question).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await {
                Ok(Ok(len)) if len >= 12 => {
                    if buffer[..2] != id.to_be_bytes() {
                        // A late answer to a question that timed out.
                        continue;
                    }
                    // RCODE: 0 NOERROR with one answer, 3 NXDOMAIN.
                    let rcode = buffer[3] & 0x0f;
                    let answers = u16::from_be_bytes([buffer[6], buffer[7]]);
                    let right = if *exists {
                        rcode == 0 && answers == 1
                    } else {
                        rcode == 3
                    };
                    if right {
                        rate.answered += 1;
                    } else {
                        rate.wrong += 1;
                    }
                    break;
                }
                Ok(Ok(_)) => {
                    rate.wrong += 1;
                    break;
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    rate.timeouts += 1;
                    break;
                }
            }
        }
    }
    Ok(rate)
}
