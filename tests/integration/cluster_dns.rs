//! The `cluster-dns` binary against an in-process apiserver, asked over
//! UDP and TCP on loopback: portal and headless A records, endpoint
//! hostnames, SRV, NXDOMAIN vs NODATA, REFUSED outside the zone, a service
//! created after start resolving and a deleted one ceasing to, SIGTERM.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::dns::{answers, query_tcp, query_udp};
use mini_k8s_tests::processes::Process;
use serde_json::json;

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> Result<u16> {
    for _ in 0..20 {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = tcp.local_addr()?.port();
        if std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no port free for both udp and tcp")
}

async fn create(c: &TestCluster, path: &str, body: serde_json::Value) -> Result<serde_json::Value> {
    let (code, body) = c.post(path, &body).await?;
    ensure!(code == 201, "POST {path}: {code} {body}");
    Ok(body)
}

/// Polls `name` `qtype` over UDP until `done` holds (30 s at most).
async fn wait_answer(
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    done: impl Fn(ResponseCode, &[String]) -> bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = query_udp(server, name, qtype).await?;
        let data = answers(&answer);
        if done(answer.response_code(), &data) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} {qtype} never got the expected answer; last {:?} {data:?}",
            answer.response_code()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_answers_services_and_follows_changes() -> Result<()> {
    let c = TestCluster::start().await?;
    let db = create(
        &c,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "db"}, "spec": {
            "selector": {"app": "db"},
            "ports": [{"name": "mysql", "port": 3306, "protocol": "TCP"}]}}),
    )
    .await?;
    let db_ip = db["spec"]["clusterIP"]
        .as_str()
        .context("db has no clusterIP")?
        .to_string();
    create(
        &c,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "web"}, "spec": {
            "clusterIP": "None", "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}),
    )
    .await?;
    // Written as the endpoints controller would.
    create(
        &c,
        "/api/v1/namespaces/default/endpoints",
        json!({"metadata": {"name": "web"}, "subsets": [{
            "addresses": [{"ip": "10.244.1.2", "hostname": "web-0"}, {"ip": "10.244.2.3"}],
            "notReadyAddresses": [{"ip": "10.244.3.4"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}),
    )
    .await?;

    let port = free_port()?;
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let healthz = free_port()?;
    let log = tempfile::NamedTempFile::new()?;
    let mut dns = Process::spawn(
        "cluster-dns",
        "cluster-dns",
        &[
            "--master".into(),
            c.url().to_string(),
            "--dns-bind-address".into(),
            server.to_string(),
            "--healthz-bind-address".into(),
            format!("127.0.0.1:{healthz}"),
            "-v".into(),
            "1".into(),
        ],
        log.path(),
    )?;

    let result = async {
        let full = "db.default.svc.cluster.local.";
        wait_answer(server, full, RecordType::A, |code, _| {
            code == ResponseCode::NoError
        })
        .await?;
        let readyz = c
            .http
            .get(format!("http://127.0.0.1:{healthz}/readyz"))
            .send()
            .await?;
        ensure!(readyz.status() == 200, "readyz: {}", readyz.status());

        // A service with a portal IP, over UDP and TCP, with the TTL.
        let a = query_udp(server, full, RecordType::A).await?;
        ensure!(answers(&a) == [db_ip.clone()], "db A: {:?}", answers(&a));
        ensure!(a.answers()[0].ttl() == 5, "ttl {}", a.answers()[0].ttl());
        ensure!(a.authoritative(), "not authoritative");
        let tcp = query_tcp(server, full, RecordType::A).await?;
        ensure!(
            answers(&tcp) == [db_ip.clone()],
            "db A over tcp: {:?}",
            answers(&tcp)
        );

        // Headless: the ready endpoints; a hostname; SRV per endpoint.
        let web = query_udp(server, "web.default.svc.cluster.local.", RecordType::A).await?;
        let mut ips = answers(&web);
        ips.sort();
        ensure!(ips == ["10.244.1.2", "10.244.2.3"], "web A: {ips:?}");
        let pet = query_udp(
            server,
            "web-0.web.default.svc.cluster.local.",
            RecordType::A,
        )
        .await?;
        ensure!(
            answers(&pet) == ["10.244.1.2"],
            "web-0: {:?}",
            answers(&pet)
        );
        let srv = query_udp(
            server,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await?;
        let mut targets = answers(&srv);
        targets.sort();
        ensure!(
            targets
                == [
                    "0 50 8080 10-244-2-3.web.default.svc.cluster.local.",
                    "0 50 8080 web-0.web.default.svc.cluster.local."
                ],
            "web SRV: {targets:?}"
        );
        let srv = query_udp(
            server,
            "_mysql._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        )
        .await?;
        ensure!(
            answers(&srv) == ["0 100 3306 db.default.svc.cluster.local."],
            "db SRV: {:?}",
            answers(&srv)
        );
        ensure!(
            srv.additionals()
                .iter()
                .any(|r| r.data().to_string() == db_ip),
            "db SRV without its A in additionals: {:?}",
            srv.additionals()
        );

        // NXDOMAIN vs NODATA, both with the SOA; REFUSED outside the zone.
        let missing = query_udp(server, "nope.default.svc.cluster.local.", RecordType::A).await?;
        ensure!(
            missing.response_code() == ResponseCode::NXDomain,
            "nope: {missing:?}"
        );
        ensure!(
            missing
                .name_servers()
                .iter()
                .any(|r| r.record_type() == RecordType::SOA),
            "NXDOMAIN without SOA"
        );
        let aaaa = query_udp(server, full, RecordType::AAAA).await?;
        ensure!(
            aaaa.response_code() == ResponseCode::NoError && aaaa.answers().is_empty(),
            "db AAAA should be NODATA: {aaaa:?}"
        );
        ensure!(
            aaaa.name_servers()
                .iter()
                .any(|r| r.record_type() == RecordType::SOA),
            "NODATA without SOA"
        );
        let outside = query_udp(server, "example.com.", RecordType::A).await?;
        ensure!(
            outside.response_code() == ResponseCode::Refused,
            "example.com: {outside:?}"
        );

        // A service made after start resolves; deleted, it stops.
        let late = create(
            &c,
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "late"}, "spec": {
                "ports": [{"port": 80, "protocol": "TCP"}]}}),
        )
        .await?;
        let late_ip = late["spec"]["clusterIP"]
            .as_str()
            .context("late ip")?
            .to_string();
        wait_answer(
            server,
            "late.default.svc.cluster.local.",
            RecordType::A,
            |_, data| data == [late_ip.clone()],
        )
        .await?;
        let (code, body) = c.delete("/api/v1/namespaces/default/services/late").await?;
        ensure!(code == 200, "delete late: {code} {body}");
        wait_answer(
            server,
            "late.default.svc.cluster.local.",
            RecordType::A,
            |code, _| code == ResponseCode::NXDomain,
        )
        .await?;

        // SIGTERM: a clean exit.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &dns.pid().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while dns.is_running() {
            ensure!(
                tokio::time::Instant::now() < deadline,
                "cluster-dns still runs 10 s after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = dns.log();
        ensure!(
            log.contains("cluster-dns stopping"),
            "no clean stop in the log:\n{log}"
        );
        ensure!(
            !log.contains("cluster-dns: "),
            "an error on the way out:\n{log}"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        eprintln!("cluster-dns log:\n{}", dns.log_tail(40));
    }
    result
}
