//! `ctl port-forward [pod/]NAME [LOCAL:]REMOTE... [--address A]`: listens
//! on local ports and carries each connection to the pod's port through
//! `pods/{name}/portforward` over WebSocket (Kubernetes' v4 port-forward
//! protocol: channel 0 data, 1 errors, each starting with the port as two
//! little-endian bytes). One WebSocket per connection, so a session serves
//! any number of connections at once, as kubectl's does.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message as Ws;

use crate::client::{encode, Ctl};
use crate::commands::exec::pod_name;
use crate::GlobalArgs;

/// Flags of `port-forward`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// Ports: `LOCAL:REMOTE`, `:REMOTE` (any free local port) or `PORT`
    /// (the same on both sides); REMOTE may name a container port.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on, comma separated (`localhost`: 127.0.0.1 and ::1).
    #[arg(long, default_value = "localhost", value_delimiter = ',')]
    pub address: Vec<String>,
}

/// One `LOCAL:REMOTE` pair as given (REMOTE unresolved; LOCAL 0 = any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The local port (0: any free one).
    pub local: u16,
    /// The remote port, a number or a container port's name.
    pub remote: String,
}

/// Reads `LOCAL:REMOTE`, `:REMOTE`, `PORT`.
///
/// # Errors
///
/// kubectl's messages for what is not a port.
pub fn parse_port(text: &str) -> Result<PortSpec> {
    let (local, remote) = match text.split_once(':') {
        Some((local, remote)) => (local, remote),
        None => (text, text),
    };
    if remote.is_empty() {
        bail!("invalid port format {text:?}");
    }
    let local = if local.is_empty() {
        0
    } else {
        local
            .parse::<u16>()
            .with_context(|| format!("error parsing local port {local:?}"))?
    };
    if let Ok(n) = remote.parse::<u16>() {
        if n == 0 {
            bail!("remote port must be > 0");
        }
    } else if remote.chars().all(|c| c.is_ascii_digit()) {
        bail!("error parsing remote port {remote:?}");
    }
    Ok(PortSpec {
        local,
        remote: remote.to_string(),
    })
}

/// The number of `remote` in `pod`: itself, or the container port of that name.
///
/// # Errors
///
/// A name no container port has.
pub fn resolve_remote(pod: &Value, remote: &str) -> Result<u16> {
    if let Ok(port) = remote.parse() {
        return Ok(port);
    }
    pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["ports"].as_array())
        .flatten()
        .find(|p| p["name"] == remote)
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("pod does not have a named port {remote:?}"))
}

/// The listen IPs of `--address` values (`localhost` is both loopbacks).
///
/// # Errors
///
/// A value that is neither `localhost` nor an IP address.
pub fn listen_ips(addresses: &[String]) -> Result<Vec<std::net::IpAddr>> {
    let mut ips = Vec::new();
    for address in addresses {
        match address.trim() {
            "localhost" => {
                ips.push(std::net::Ipv4Addr::LOCALHOST.into());
                ips.push(std::net::Ipv6Addr::LOCALHOST.into());
            }
            other => ips.push(
                other
                    .parse()
                    .with_context(|| format!("{other} is not a valid IP"))?,
            ),
        }
    }
    ips.dedup();
    Ok(ips)
}

/// Runs `port-forward` until interrupted.
///
/// # Errors
///
/// A missing or not running pod, a bad port, a local port that cannot be
/// bound.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let name = pod_name(&args.pod).to_string();
    let pod_path = format!(
        "/api/v1/namespaces/{}/pods/{}",
        encode(&ctl.namespace),
        encode(&name)
    );
    let pod = ctl.get(&pod_path).await?;
    let phase = pod["status"]["phase"].as_str().unwrap_or_default();
    if phase != "Running" {
        bail!("unable to forward port because pod is not running. Current status={phase}");
    }
    let specs = args
        .ports
        .iter()
        .map(|p| parse_port(p))
        .collect::<Result<Vec<_>>>()?;
    let ips = listen_ips(&args.address)?;
    let mut listeners = Vec::new();
    for spec in &specs {
        let remote = resolve_remote(&pod, &spec.remote)?;
        let mut local = spec.local;
        let mut bound = 0;
        for ip in &ips {
            match TcpListener::bind(SocketAddr::new(*ip, local)).await {
                Ok(listener) => {
                    let address = listener.local_addr()?;
                    // `:REMOTE` takes one free port for every address.
                    local = address.port();
                    println!("Forwarding from {address} -> {remote}");
                    listeners.push((listener, remote));
                    bound += 1;
                }
                // kubectl goes on when one loopback (IPv6, often) is missing.
                Err(error) if ips.len() > 1 => {
                    tracing::debug!(%error, %ip, "cannot listen");
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("unable to listen on {ip}:{local}"))
                }
            }
        }
        if bound == 0 {
            bail!("unable to listen on any of the requested ports: [{{{local} {remote}}}]");
        }
    }
    let path = format!("{pod_path}/portforward");
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, remote) in listeners {
        let ctl = ctl.clone();
        let path = path.clone();
        tasks.spawn(async move { serve(listener, ctl, path, remote).await });
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some(ended) = tasks.join_next() => match ended {
            Ok(result) => result,
            Err(e) => bail!("a listener stopped: {e}"),
        },
    }
}

async fn serve(listener: TcpListener, ctl: Ctl, path: String, remote: u16) -> Result<()> {
    let local = listener.local_addr()?.port();
    loop {
        let (tcp, _) = listener.accept().await.context("accepting a connection")?;
        println!("Handling connection for {local}");
        let ctl = ctl.clone();
        let url = format!("{path}?ports={remote}");
        tokio::spawn(async move {
            if let Err(error) = forward(&ctl, &url, tcp).await {
                eprintln!("error: an error occurred forwarding {local} -> {remote}: {error:#}");
            }
        });
    }
}

/// Carries one connection: local bytes out on channel 0, the pod's back
/// from it; a message on channel 1 is the kubelet's error for this
/// connection. The local side's EOF closes the WebSocket (what comes back
/// before the close is still delivered); the remote's end closes ours.
///
/// # Errors
///
/// The WebSocket failing or the kubelet's error message.
pub async fn forward(ctl: &Ctl, path: &str, tcp: TcpStream) -> Result<()> {
    let connection = ctl.connect_ws(path).await?;
    let (mut sink, mut source) = connection.into_stream().split();
    let (mut read, mut write) = tcp.into_split();
    let up = async move {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            let n = read.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            sink.send(Ws::binary(api_types::remotecommand::frame(0, &buffer[..n])))
                .await?;
        }
        sink.send(Ws::Close(None)).await?;
        anyhow::Ok(())
    };
    let down = async move {
        // The first two bytes of each channel are its port.
        let mut prefix_left = [2usize, 2usize];
        let mut error = Vec::new();
        while let Some(message) = source.next().await {
            let bytes = match message? {
                Ws::Binary(bytes) => bytes,
                Ws::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, mut data)) = bytes.split_first() else {
                continue;
            };
            let Some(left) = prefix_left.get_mut(usize::from(channel)) else {
                continue;
            };
            let skip = (*left).min(data.len());
            *left -= skip;
            data = &data[skip..];
            match channel {
                0 => write.write_all(data).await?,
                _ => error.extend_from_slice(data),
            }
        }
        let _ = write.shutdown().await;
        if !error.is_empty() {
            bail!("{}", String::from_utf8_lossy(&error).trim());
        }
        anyhow::Ok(())
    };
    tokio::pin!(up, down);
    tokio::select! {
        result = &mut down => result,
        result = &mut up => {
            result?;
            down.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_read_as_kubectl_reads_them() {
        let spec = |local, remote: &str| PortSpec {
            local,
            remote: remote.into(),
        };
        assert_eq!(parse_port("8080:80").unwrap(), spec(8080, "80"));
        assert_eq!(parse_port(":80").unwrap(), spec(0, "80"));
        assert_eq!(parse_port("80").unwrap(), spec(80, "80"));
        assert_eq!(parse_port("8080:http").unwrap(), spec(8080, "http"));
        assert!(parse_port("8080:").is_err());
        assert!(parse_port("x:80").is_err());
        assert!(parse_port("1:0").is_err());
        let pod = serde_json::json!({"spec": {"containers": [{"ports": [{"name": "http", "containerPort": 80}]}]}});
        assert_eq!(resolve_remote(&pod, "http").unwrap(), 80);
        assert!(resolve_remote(&pod, "grpc").is_err());
        assert_eq!(listen_ips(&["localhost".into()]).unwrap().len(), 2);
    }
}
