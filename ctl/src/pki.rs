//! Certificates for a cluster's identities (`ctl certs`), made with `rcgen`:
//! one CA, serving certificates (the apiserver's, each kubelet's) and client
//! certificates whose subject is the identity, as Kubernetes reads it: the
//! common name is the user, each organization a group.
//!
//! Keys are ECDSA P-256, PKCS#8 PEM, written mode 0600; certificates PEM.
//! A CA is read back from its two files to sign later certificates, so a
//! component added to a running cluster can get an identity of its own.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

/// What can go wrong making or writing certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot make certificate {name}: {source}")]
    Generate {
        /// The certificate's file stem.
        name: String,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A DNS name given for a serving certificate is not one.
    #[error("{0:?} is not a DNS name")]
    BadDnsName(String),
}

/// `type Result<T> = Result<T, pki::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A CA able to sign: its certificate (as rcgen rebuilds it from the stored
/// parameters, same subject and key) and its key.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    /// The CA certificate's PEM, as stored (what clients trust).
    pub pem: String,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Default)]
pub struct Leaf {
    /// Common name: the user of a client certificate, a label for a
    /// serving one.
    pub common_name: String,
    /// Organization: a client certificate's group. One at most: rcgen's
    /// distinguished name holds one value per attribute type.
    pub organization: Option<String>,
    /// IP subject alternative names (serving).
    pub ips: Vec<IpAddr>,
    /// DNS subject alternative names (serving).
    pub dns_names: Vec<String>,
    /// Usable to serve TLS.
    pub server: bool,
    /// Usable as a TLS client identity.
    pub client: bool,
}

impl Leaf {
    /// A client identity: `user` as the common name, `group` (if any) as
    /// the organization, as the apiserver and kubelet read them.
    pub fn client(user: &str, group: Option<&str>) -> Self {
        Self {
            common_name: user.into(),
            organization: group.map(str::to_string),
            client: true,
            ..Self::default()
        }
    }
}

/// A certificate and its key, PEM.
pub struct Issued {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

fn generate(name: &str) -> impl Fn(rcgen::Error) -> Error + '_ {
    move |source| Error::Generate {
        name: name.to_string(),
        source,
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Ten years: these are a local cluster's, rotated by making a new cluster.
fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 24 * 3600)).into();
}

impl Ca {
    /// A new self-signed CA named `common_name`.
    ///
    /// # Errors
    ///
    /// [`Error::Generate`] if rcgen fails.
    pub fn new(common_name: &str) -> Result<Self> {
        let err = generate("ca");
        let key = KeyPair::generate().map_err(&err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let cert = params.self_signed(&key).map_err(&err)?;
        let pem = cert.pem();
        Ok(Self { cert, key, pem })
    }

    /// The CA stored as `DIR/ca.crt` and `DIR/ca.key`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a file cannot be read, [`Error::Generate`] if it
    /// is not a CA rcgen can sign with.
    pub fn load(dir: &Path) -> Result<Self> {
        let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let pem = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let err = generate("ca");
        let key = KeyPair::from_pem(&key_pem).map_err(&err)?;
        // rcgen signs with a Certificate; rebuilding it from the stored
        // parameters and key gives the same issuer name and key identifier.
        let params = CertificateParams::from_ca_cert_pem(&pem).map_err(&err)?;
        let cert = params.self_signed(&key).map_err(&err)?;
        Ok(Self { cert, key, pem })
    }

    /// Writes `DIR/ca.crt` and `DIR/ca.key` (0600).
    ///
    /// # Errors
    ///
    /// [`Error::Io`].
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_pair(
            dir,
            "ca",
            &Issued {
                cert_pem: self.pem.clone(),
                key_pem: self.key.serialize_pem(),
            },
        )
    }

    /// Issues a certificate for `leaf`, valid as long as the CA.
    ///
    /// # Errors
    ///
    /// [`Error::BadDnsName`], [`Error::Generate`].
    pub fn issue(&self, leaf: &Leaf) -> Result<Issued> {
        let err = generate(&leaf.common_name);
        let key = KeyPair::generate().map_err(&err)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        if let Some(org) = &leaf.organization {
            dn.push(DnType::OrganizationName, org.as_str());
        }
        dn.push(DnType::CommonName, leaf.common_name.as_str());
        params.distinguished_name = dn;
        for ip in &leaf.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for name in &leaf.dns_names {
            let dns = name
                .as_str()
                .try_into()
                .map_err(|_| Error::BadDnsName(name.clone()))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if leaf.server {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if leaf.client {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(&err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes `DIR/NAME.crt` (0644) and `DIR/NAME.key` (0600, created so: the
/// key is never readable by others, not even for a moment).
///
/// # Errors
///
/// [`Error::Io`].
pub fn write_pair(dir: &Path, name: &str, issued: &Issued) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (cert, key) = paths(dir, name);
    std::fs::write(&cert, &issued.cert_pem).map_err(io(&cert))?;
    let _ = std::fs::remove_file(&key);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .map_err(io(&key))?;
    file.write_all(issued.key_pem.as_bytes())
        .map_err(io(&key))?;
    // The umask cannot widen 0600, but a pre-set ACL default could; be sure.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).map_err(io(&key))?;
    Ok(())
}

/// `DIR/NAME.crt`, `DIR/NAME.key`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_ca_issues_certificates_chaining_to_the_stored_one() {
        let dir = tempfile::tempdir().unwrap();
        Ca::new("test-ca").unwrap().save(dir.path()).unwrap();
        let ca = Ca::load(dir.path()).unwrap();
        let leaf = ca
            .issue(&Leaf::client("system:node:a", Some("system:nodes")))
            .unwrap();
        write_pair(dir.path(), "a", &leaf).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("a.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(leaf.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
    }
}
