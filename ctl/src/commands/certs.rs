//! `ctl certs` (hidden): the certificates of a local cluster's identities,
//! for `hack/lib/cluster.sh` and the Vagrant provisioning, as `kubeadm init
//! phase certs` makes Kubernetes'. Not a kubectl verb, hence hidden.
//!
//!   ctl certs ca DIR                     DIR/ca.{crt,key} (kept if present)
//!   ctl certs issue DIR NAME --cn USER [--org GROUP] --client
//!   ctl certs issue DIR NAME --cn NAME --ip IP [--dns NAME]... --serving

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::pki::{self, Ca, Leaf};

/// Flags of `certs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to make.
    #[command(subcommand)]
    pub what: What,
}

/// `certs ca` or `certs issue`.
#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// A CA in DIR (ca.crt, ca.key); an existing one is kept.
    Ca {
        /// The directory.
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "mini-k8s-ca")]
        cn: String,
    },
    /// DIR/NAME.crt and DIR/NAME.key, signed by DIR's CA.
    Issue {
        /// The CA's directory, where the pair is written.
        dir: PathBuf,
        /// The files' stem.
        name: String,
        /// Common name: the user of a client certificate.
        #[arg(long)]
        cn: String,
        /// Organization: the group of a client certificate.
        #[arg(long = "org")]
        organization: Option<String>,
        /// IP subject alternative name (repeatable).
        #[arg(long = "ip")]
        ips: Vec<IpAddr>,
        /// DNS subject alternative name (repeatable).
        #[arg(long = "dns")]
        dns_names: Vec<String>,
        /// For serving TLS (not `--server`: that is the global flag).
        #[arg(long)]
        serving: bool,
        /// For a TLS client identity.
        #[arg(long)]
        client: bool,
    },
}

/// Runs `certs`.
///
/// # Errors
///
/// A file cannot be read or written; rcgen fails.
pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Ca { dir, cn } => {
            if dir.join("ca.crt").exists() && dir.join("ca.key").exists() {
                Ca::load(&dir).with_context(|| format!("the CA in {}", dir.display()))?;
                return Ok(());
            }
            Ca::new(&cn)?.save(&dir)?;
            Ok(())
        }
        What::Issue {
            dir,
            name,
            cn,
            organization,
            ips,
            dns_names,
            serving,
            client,
        } => {
            anyhow::ensure!(serving || client, "say --serving, --client or both");
            let ca = Ca::load(&dir).with_context(|| format!("the CA in {}", dir.display()))?;
            let issued = ca.issue(&Leaf {
                common_name: cn,
                organization,
                ips,
                dns_names,
                server: serving,
                client,
            })?;
            pki::write_pair(&dir, &name, &issued)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    #[test]
    fn the_flags_parse_beside_the_global_ones() {
        let cli = crate::Cli::try_parse_from([
            "ctl",
            "certs",
            "issue",
            "/d",
            "n",
            "--cn",
            "u",
            "--org",
            "g",
            "--client",
            "--serving",
            "--ip",
            "10.0.0.1",
            "--dns",
            "kubernetes",
        ])
        .unwrap();
        assert!(matches!(cli.command, crate::Command::Certs(_)));
    }
}
