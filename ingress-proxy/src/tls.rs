//! TLS from Secrets: the served Ingresses' `spec.tls[]` and the Secrets
//! they name → [`Certs`], the certificates by host, which [`Resolver`]
//! reads at every handshake to choose one by SNI.
//!
//! The rules:
//!
//! - Each `spec.tls[]` entry gives its `hosts` the certificate and key of
//!   the Secret `secretName` in the Ingress's namespace (`tls.crt`: the PEM
//!   chain, leaf first; `tls.key`: a PEM private key, PKCS#8, PKCS#1 or
//!   SEC1). The Secret's `type` is not checked, as ingress-nginx does not:
//!   the two keys are what counts.
//! - A host is matched exactly first, then as a `*.suffix` wildcard of one
//!   label, as the routes are. Two Ingresses naming the same host: the
//!   oldest wins, as for routes.
//! - An entry without `hosts` makes its certificate the default: the one
//!   served to a handshake whose SNI names no TLS host, or that has no SNI
//!   (Kubernetes: "defaults to the wildcard host setting of the
//!   controller").
//! - Otherwise there is no certificate to offer and the handshake fails.
//!   ingress-nginx serves a self-signed "fake" certificate instead; we do
//!   not, so a host without TLS configuration is simply not served over TLS
//!   (plain HTTP is unaffected), and a client is never shown a certificate
//!   nobody configured.
//! - A missing or unusable Secret: that entry's hosts get no certificate
//!   (handshakes for them fail); the reason is returned by [`Certs::build`]
//!   for the caller to log once ([`Problems`]).
//!
//! Parsing a Secret (PEM, key check) is the only costly step; [`KeyCache`]
//! keeps each Secret's parse by `resourceVersion`, so a rebuild after an
//! unrelated change parses nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use crate::routes::served;

/// Why a Secret gives no certificate.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// No Secret of that name in the Ingress's namespace.
    #[error("secret {0} not found")]
    NotFound(String),
    /// A key is absent or empty.
    #[error("secret {secret} has no {key}")]
    MissingKey {
        /// `namespace/name`.
        secret: String,
        /// `tls.crt` or `tls.key`.
        key: &'static str,
    },
    /// The PEM does not parse or holds nothing of the kind.
    #[error("secret {secret}: {key} holds no PEM {what}")]
    NoPem {
        /// `namespace/name`.
        secret: String,
        /// `tls.crt` or `tls.key`.
        key: &'static str,
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// rustls refused the pair (unsupported key, key not the
    /// certificate's).
    #[error("secret {secret}: {reason}")]
    Unusable {
        /// `namespace/name`.
        secret: String,
        /// rustls' error, as text.
        reason: String,
    },
}

/// The certificates of one moment, rebuilt whole and swapped in.
#[derive(Debug, Default)]
pub struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by what follows `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

/// Parses of Secrets by `namespace/name`, kept while their
/// `resourceVersion` stays.
#[derive(Default)]
pub struct KeyCache {
    parsed: HashMap<String, (String, Result<Arc<CertifiedKey>, SecretError>)>,
}

impl KeyCache {
    fn get(&mut self, key: &str, secret: &Secret) -> Result<Arc<CertifiedKey>, SecretError> {
        let version = secret.metadata.resource_version.clone().unwrap_or_default();
        if let Some((seen, parsed)) = self.parsed.get(key) {
            // An empty version (a test's object) is never trusted as equal.
            if *seen == version && !version.is_empty() {
                return parsed.clone();
            }
        }
        let parsed = parse(key, secret);
        self.parsed
            .insert(key.to_string(), (version, parsed.clone()));
        parsed
    }

    /// Forgets the Secrets not named now, so the cache holds no key of a
    /// Secret that no Ingress uses any more.
    fn retain(&mut self, named: &BTreeSet<String>) {
        self.parsed.retain(|k, _| named.contains(k));
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A Secret's `tls.crt` and `tls.key` as a rustls certified key.
fn parse(name: &str, secret: &Secret) -> Result<Arc<CertifiedKey>, SecretError> {
    let value = |key: &'static str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.as_slice())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| SecretError::MissingKey {
                secret: name.to_string(),
                key,
            })
    };
    let no_pem = |key, what| SecretError::NoPem {
        secret: name.to_string(),
        key,
        what,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(value("tls.crt")?)
        .collect::<Result<_, _>>()
        .map_err(|_| no_pem("tls.crt", "certificate"))?;
    if chain.is_empty() {
        return Err(no_pem("tls.crt", "certificate"));
    }
    let key = PrivateKeyDer::from_pem_slice(value("tls.key")?)
        .map_err(|_| no_pem("tls.key", "private key"))?;
    CertifiedKey::from_der(chain, key, &provider())
        .map(Arc::new)
        .map_err(|e| SecretError::Unusable {
            secret: name.to_string(),
            reason: e.to_string(),
        })
}

impl Certs {
    /// The certificates of the Ingresses of `class` (or without one);
    /// `secrets` may hold any Secrets. Returns the table and, for each entry
    /// that gives no certificate, `namespace/ingress: reason`.
    pub fn build(
        ingresses: &[Arc<Ingress>],
        secrets: &[Arc<Secret>],
        class: &str,
        cache: &mut KeyCache,
    ) -> (Self, Vec<String>) {
        let by_key: HashMap<String, &Secret> = secrets
            .iter()
            .map(|s| {
                let meta = &s.metadata;
                (
                    format!(
                        "{}/{}",
                        meta.namespace.as_deref().unwrap_or_default(),
                        meta.name.as_deref().unwrap_or_default()
                    ),
                    &**s,
                )
            })
            .collect();
        let served = served(ingresses, class);
        let mut certs = Certs::default();
        let mut problems = Vec::new();
        let mut named = BTreeSet::new();
        for ingress in served {
            let namespace = ingress.metadata.namespace.as_deref().unwrap_or_default();
            let name = ingress.metadata.name.as_deref().unwrap_or_default();
            let tls = ingress
                .spec
                .as_ref()
                .and_then(|s| s.tls.as_deref())
                .unwrap_or_default();
            for entry in tls {
                let Some(secret_name) = entry.secret_name.as_deref().filter(|n| !n.is_empty())
                else {
                    // Kubernetes allows it (SNI routing by another
                    // component); nothing for us to serve.
                    continue;
                };
                let key = format!("{namespace}/{secret_name}");
                named.insert(key.clone());
                let parsed = match by_key.get(&key) {
                    Some(secret) => cache.get(&key, secret),
                    None => Err(SecretError::NotFound(key)),
                };
                let certified = match parsed {
                    Ok(certified) => certified,
                    Err(error) => {
                        problems.push(format!("{namespace}/{name}: {error}"));
                        continue;
                    }
                };
                let hosts = entry.hosts.as_deref().unwrap_or_default();
                if hosts.is_empty() && certs.default.is_none() {
                    certs.default = Some(certified.clone());
                }
                for host in hosts {
                    let host = host.to_ascii_lowercase();
                    let (map, host) = match host.strip_prefix("*.") {
                        Some(suffix) => (&mut certs.wildcard, suffix.to_string()),
                        None => (&mut certs.exact, host),
                    };
                    // Taken already: an older Ingress's entry wins.
                    map.entry(host).or_insert_with(|| certified.clone());
                }
            }
        }
        cache.retain(&named);
        (certs, problems)
    }

    /// The certificate for a handshake's SNI (`None`: none sent).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = sni.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).cloned().or_else(|| {
                name.split_once('.')
                    .and_then(|(_, suffix)| self.wildcard.get(suffix))
                    .cloned()
            })
        });
        found.or_else(|| self.default.clone())
    }

    /// Whether any certificate is configured.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty() && self.default.is_none()
    }
}

/// Logs each problem once: when it first appears, and again only after it
/// went away and came back (a Secret fixed, then broken again).
#[derive(Default)]
pub struct Problems {
    open: BTreeSet<String>,
}

impl Problems {
    /// Takes the problems of the latest build; returns the new ones.
    pub fn update(&mut self, now: Vec<String>) -> Vec<String> {
        let now: BTreeSet<String> = now.into_iter().collect();
        let new = now.difference(&self.open).cloned().collect();
        self.open = now;
        new
    }
}

/// Chooses the certificate by SNI from the latest [`Certs`]; read at every
/// handshake, so a change needs no restart and no new listener.
#[derive(Debug)]
pub struct Resolver {
    certs: watch::Receiver<Arc<Certs>>,
}

impl Resolver {
    /// A resolver following `certs`.
    pub fn new(certs: watch::Receiver<Arc<Certs>>) -> Self {
        Self { certs }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.certs.borrow().lookup(hello.server_name());
        if found.is_none() {
            tracing::debug!(sni = ?hello.server_name(), "no certificate for this name: handshake refused");
        }
        found
    }
}

/// The HTTPS listener's rustls configuration: certificates from
/// `resolver`, HTTP/1.1 offered by ALPN.
///
/// # Errors
///
/// rustls' if the ring provider offers no safe protocol version (never in
/// practice).
pub fn server_config(resolver: Resolver) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn ingress(name: &str, created: &str, tls: serde_json::Value) -> Arc<Ingress> {
        crate::routes::tests::ingress(name, created, json!({ "tls": tls }))
    }

    /// A self-signed certificate for `names`, as a Secret `name`.
    fn secret(name: &str, version: &str, names: &[&str]) -> Arc<Secret> {
        let names: Vec<String> = names.iter().map(|s| (*s).to_string()).collect();
        let cert = rcgen::generate_simple_self_signed(names).unwrap();
        secret_of(
            name,
            version,
            cert.cert.pem().as_bytes(),
            cert.key_pair.serialize_pem().as_bytes(),
        )
    }

    fn secret_of(name: &str, version: &str, crt: &[u8], key: &[u8]) -> Arc<Secret> {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.to_string());
        secret.metadata.namespace = Some("default".to_string());
        secret.metadata.resource_version = Some(version.to_string());
        secret.type_ = Some("kubernetes.io/tls".to_string());
        secret.data = Some(
            [
                ("tls.crt".to_string(), ByteString(crt.to_vec())),
                ("tls.key".to_string(), ByteString(key.to_vec())),
            ]
            .into(),
        );
        Arc::new(secret)
    }

    fn leaf(certs: &Certs, sni: Option<&str>) -> Option<Vec<u8>> {
        certs.lookup(sni).map(|k| k.cert[0].to_vec())
    }

    #[test]
    fn sni_chooses_exact_then_wildcard_then_default() {
        let a = secret("a", "1", &["a.example"]);
        let w = secret("w", "1", &["*.w.example"]);
        let d = secret("d", "1", &["default.example"]);
        let ingresses = [ingress(
            "web",
            "2026-01-01T00:00:00Z",
            json!([{"hosts": ["a.example"], "secretName": "a"},
                   {"hosts": ["*.w.example"], "secretName": "w"},
                   {"secretName": "d"}]),
        )];
        let mut cache = KeyCache::default();
        let (certs, problems) = Certs::build(
            &ingresses,
            &[a.clone(), w.clone(), d.clone()],
            "mini-k8s",
            &mut cache,
        );
        assert!(problems.is_empty(), "{problems:?}");
        let der = |s: &Secret| {
            CertificateDer::from_pem_slice(&s.data.as_ref().unwrap()["tls.crt"].0)
                .unwrap()
                .to_vec()
        };
        assert_eq!(leaf(&certs, Some("a.example")), Some(der(&a)));
        assert_eq!(leaf(&certs, Some("A.Example.")), Some(der(&a)));
        assert_eq!(leaf(&certs, Some("x.w.example")), Some(der(&w)));
        // One label only; other names and no SNI get the default.
        assert_eq!(leaf(&certs, Some("y.x.w.example")), Some(der(&d)));
        assert_eq!(leaf(&certs, Some("other.example")), Some(der(&d)));
        assert_eq!(leaf(&certs, None), Some(der(&d)));
    }

    #[test]
    fn no_default_means_no_certificate_and_the_oldest_ingress_wins() {
        let old = secret("old", "1", &["a.example"]);
        let new = secret("new", "1", &["a.example"]);
        let ingresses = [
            ingress(
                "newer",
                "2026-02-01T00:00:00Z",
                json!([{"hosts": ["a.example"], "secretName": "new"}]),
            ),
            ingress(
                "older",
                "2026-01-01T00:00:00Z",
                json!([{"hosts": ["a.example"], "secretName": "old"}]),
            ),
        ];
        let (certs, _) = Certs::build(
            &ingresses,
            &[old.clone(), new],
            "mini-k8s",
            &mut KeyCache::default(),
        );
        let old_der = certs.lookup(Some("a.example")).unwrap().cert[0].to_vec();
        let (only_old, _) = Certs::build(
            &ingresses[1..],
            &[old],
            "mini-k8s",
            &mut KeyCache::default(),
        );
        assert_eq!(
            old_der,
            only_old.lookup(Some("a.example")).unwrap().cert[0].to_vec()
        );
        assert!(certs.lookup(Some("b.example")).is_none());
        assert!(certs.lookup(None).is_none());
    }

    #[test]
    fn bad_secrets_are_reported_and_give_no_certificate() {
        let good = secret("good", "1", &["good.example"]);
        let other = secret("other", "1", &["x.example"]);
        let mismatched = secret_of(
            "mismatched",
            "1",
            good.data.as_ref().unwrap()["tls.crt"].0.as_slice(),
            other.data.as_ref().unwrap()["tls.key"].0.as_slice(),
        );
        let garbage = secret_of("garbage", "1", b"not pem", b"not pem either");
        let mut no_key = (*good).clone();
        no_key.metadata.name = Some("nokey".to_string());
        no_key.data.as_mut().unwrap().remove("tls.key");
        let ingresses = [ingress(
            "web",
            "2026-01-01T00:00:00Z",
            json!([{"hosts": ["missing.example"], "secretName": "missing"},
                   {"hosts": ["mismatched.example"], "secretName": "mismatched"},
                   {"hosts": ["garbage.example"], "secretName": "garbage"},
                   {"hosts": ["nokey.example"], "secretName": "nokey"},
                   {"hosts": ["good.example"], "secretName": "good"}]),
        )];
        let (certs, problems) = Certs::build(
            &ingresses,
            &[good, mismatched, garbage, Arc::new(no_key)],
            "mini-k8s",
            &mut KeyCache::default(),
        );
        assert_eq!(
            problems,
            [
                "default/web: secret default/missing not found",
                "default/web: secret default/mismatched: keys may not be consistent: KeyMismatch",
                "default/web: secret default/garbage: tls.crt holds no PEM certificate",
                "default/web: secret default/nokey has no tls.key",
            ]
        );
        assert!(certs.lookup(Some("good.example")).is_some());
        for host in ["missing", "mismatched", "garbage", "nokey"] {
            assert!(certs.lookup(Some(&format!("{host}.example"))).is_none());
        }
    }

    #[test]
    fn a_secret_is_parsed_again_only_when_its_version_changes() {
        let ingresses = [ingress(
            "web",
            "2026-01-01T00:00:00Z",
            json!([{"hosts": ["a.example"], "secretName": "a"}]),
        )];
        let mut cache = KeyCache::default();
        let v1 = secret("a", "1", &["a.example"]);
        let (first, _) = Certs::build(
            &ingresses,
            std::slice::from_ref(&v1),
            "mini-k8s",
            &mut cache,
        );
        let (again, _) = Certs::build(&ingresses, &[v1], "mini-k8s", &mut cache);
        let ptr = |c: &Certs| Arc::as_ptr(&c.lookup(Some("a.example")).unwrap());
        assert_eq!(ptr(&first), ptr(&again));
        let v2 = secret("a", "2", &["a.example"]);
        let (changed, _) = Certs::build(&ingresses, &[v2], "mini-k8s", &mut cache);
        assert_ne!(
            first.lookup(Some("a.example")).unwrap().cert,
            changed.lookup(Some("a.example")).unwrap().cert
        );
        // An Ingress gone: its Secret's parse is dropped.
        let (_, _) = Certs::build(&[], &[], "mini-k8s", &mut cache);
        assert!(cache.parsed.is_empty());
    }

    #[test]
    fn problems_are_reported_once_until_they_go_away() {
        let mut p = Problems::default();
        assert_eq!(p.update(vec!["x".into()]), ["x"]);
        assert!(p.update(vec!["x".into()]).is_empty());
        assert!(p.update(vec![]).is_empty());
        assert_eq!(p.update(vec!["x".into()]), ["x"]);
    }
}
