//! `ctl certs` (hidden): the certificates of a local cluster's identities,
//! for `hack/lib/cluster.sh` and the Vagrant provisioning, as `kubeadm init
//! phase certs` makes Kubernetes'. Not a kubectl verb, hence hidden.
//!
//!   ctl certs ca DIR                     DIR/ca.{crt,key} (kept if present)
//!   ctl certs issue DIR NAME --cn USER [--org GROUP] --client
//!   ctl certs issue DIR NAME --cn NAME --ip IP [--dns NAME]... --server

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
        /// For serving TLS.
        #[arg(long)]
        server: bool,
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
            server,
            client,
        } => {
            anyhow::ensure!(server || client, "say --server, --client or both");
            let ca = Ca::load(&dir).with_context(|| format!("the CA in {}", dir.display()))?;
            let issued = ca.issue(&Leaf {
                common_name: cn,
                organization,
                ips,
                dns_names,
                server,
                client,
            })?;
            pki::write_pair(&dir, &name, &issued)?;
            Ok(())
        }
    }
}
