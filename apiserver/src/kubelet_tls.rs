//! The apiserver's identity toward kubelets (`--kubelet-client-certificate`,
//! `--kubelet-client-key`, `--kubelet-certificate-authority`): the one HTTP
//! client every request to a kubelet goes through.
//!
//! With a CA, kubelets are spoken to over HTTPS, their serving certificate
//! verified against it (for the node's IP address), and the client
//! certificate, when given, presented as Kubernetes' apiserver does. Without
//! one, plain HTTP as before, for kubelets serving on loopback. Kubernetes
//! skips the verification when no CA is given; here that is refused, so a
//! client certificate is never offered to an unverified peer.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The kubelet flags are inconsistent or their files unusable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A client certificate without a CA to verify kubelets with.
    #[error("--kubelet-client-certificate needs --kubelet-certificate-authority (kubelets would not be verified)")]
    NoAuthority,
    /// Only one of certificate and key.
    #[error("--kubelet-client-certificate and --kubelet-client-key go together")]
    HalfPair,
    /// A file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("kubelet client tls: {0}")]
    Tls(#[from] rustls::Error),
}

/// How the apiserver reaches kubelets.
#[derive(Clone, Debug)]
pub enum KubeletClient {
    /// Plain HTTP (no `--kubelet-certificate-authority`).
    Plain(Client<HttpConnector, Body>),
    /// HTTPS with the apiserver's client identity.
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>),
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn bad(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

impl KubeletClient {
    /// The client the flags describe.
    ///
    /// # Errors
    ///
    /// [`Error`] for inconsistent flags or unusable files.
    pub fn new(
        certificate: Option<&Path>,
        key: Option<&Path>,
        authority: Option<&Path>,
    ) -> Result<Self, Error> {
        let Some(authority) = authority else {
            if certificate.is_some() || key.is_some() {
                return Err(Error::NoAuthority);
            }
            return Ok(Self::Plain(
                Client::builder(TokioExecutor::new()).build(crate::kubelet_client::connector()),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&read(authority)?) {
            roots
                .add(cert.map_err(|e| bad(authority, e))?)
                .map_err(|e| bad(authority, e))?;
        }
        if roots.is_empty() {
            return Err(bad(authority, "no certificate found"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match (certificate, key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(&read(cert)?)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad(cert, e))?;
                let private =
                    PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad(key, e))?;
                builder.with_client_auth_cert(chain, private)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(Error::HalfPair),
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .wrap_connector({
                let mut tcp = crate::kubelet_client::connector();
                // The scheme is checked by https_only.
                tcp.enforce_http(false);
                tcp
            });
        Ok(Self::Tls(
            Client::builder(TokioExecutor::new()).build(connector),
        ))
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Plain(_) => "http",
            Self::Tls(_) => "https",
        }
    }

    /// GET `uri` (a kubelet URL built from the node's registered address
    /// and port, in [`Self::scheme`]).
    ///
    /// # Errors
    ///
    /// The connection or TLS handshake failed.
    pub async fn get(
        &self,
        uri: hyper::Uri,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Self::Plain(client) => client.get(uri).await,
            Self::Tls(client) => client.get(uri).await,
        }
    }
}
