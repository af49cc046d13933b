//! This node's IPv4 addresses (for publicIPs), read from `ip -j addr` in the
//! network namespace the proxy runs in.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::process::Stdio;

/// `ip` could not tell us the addresses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ip` could not run.
    #[error("running ip -j -4 addr: {0}")]
    Spawn(#[source] std::io::Error),
    /// `ip` failed.
    #[error("ip -j -4 addr failed: {0}")]
    Failed(String),
    /// Its output was not the JSON expected.
    #[error("reading ip -j -4 addr output: {0}")]
    Parse(#[source] serde_json::Error),
}

#[derive(serde::Deserialize)]
struct Link {
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(serde::Deserialize)]
struct AddrInfo {
    #[serde(default)]
    local: Option<String>,
}

/// Every IPv4 address of every interface.
///
/// # Errors
///
/// [`Error`] when `ip` is missing or fails; the caller keeps the addresses
/// it knew.
pub async fn ipv4_addresses() -> Result<BTreeSet<Ipv4Addr>, Error> {
    let output = tokio::process::Command::new("ip")
        .args(["-j", "-4", "addr", "show"])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::Spawn)?;
    if !output.status.success() {
        return Err(Error::Failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    parse(&output.stdout)
}

fn parse(json: &[u8]) -> Result<BTreeSet<Ipv4Addr>, Error> {
    let links: Vec<Link> = serde_json::from_slice(json).map_err(Error::Parse)?;
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter_map(|a| a.local.as_deref()?.parse().ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_json() {
        let json = br#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
            {"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.245.1.2","prefixlen":24},{"family":"inet","local":"10.245.1.9","prefixlen":24}]},
            {"ifindex":3,"ifname":"dummy0"}]"#;
        let addrs = parse(json).unwrap();
        assert_eq!(addrs.len(), 3);
        assert!(addrs.contains(&Ipv4Addr::new(10, 245, 1, 9)));
        assert!(parse(b"not json").is_err());
    }
}
