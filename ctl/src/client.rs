//! How `ctl` reaches the apiserver: kubeconfig and flags → a `kube::Client`,
//! raw JSON requests, and errors a user can act on.
//!
//! The kubeconfig is found as kubectl finds it (`--kubeconfig`, else the
//! first file of `$KUBECONFIG`, else `~/.kube/config`); `--server`,
//! `--token` and `--namespace` override what it says. With neither a
//! kubeconfig nor `--server`, `http://localhost:8080` is tried, as kubectl
//! does.

use std::path::PathBuf;

use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use http::{header, Method, Request};
use http_body_util::BodyExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::Value;

/// What can go wrong talking to the apiserver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// `--server` or the kubeconfig's server is not a URL.
    #[error("invalid server URL {url:?}: {message}")]
    BadUrl {
        /// The text given.
        url: String,
        /// The parser's complaint.
        message: String,
    },
    /// The server could not be reached (refused, DNS, TLS...). Retryable.
    #[error("unable to connect to the server at {url}: {cause} (check that the apiserver is running and that --server or the kubeconfig names it)")]
    Connect {
        /// The server's URL.
        url: String,
        /// The innermost cause.
        cause: String,
    },
    /// The server answered with an error `Status`.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server answered something that is not the JSON expected.
    #[error("unexpected answer from {path}: {message}")]
    Decode {
        /// The request path.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// A failure `Status` from the server (v1 or v1beta1 shape).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Invalid`...; empty when unknown.
    pub reason: String,
    /// The server's message.
    pub message: String,
    /// `(field, message)` of each cause (`Invalid` lists every field error).
    pub causes: Vec<(String, String)>,
}

impl ApiError {
    fn from_body(code: u16, body: &[u8]) -> Self {
        let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut message = text(&value["message"]);
        if message.is_empty() {
            message = String::from_utf8_lossy(body).trim().to_string();
        }
        if message.is_empty() {
            message = format!("the server answered HTTP {code}");
        }
        let causes = value
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .map(|causes| {
                causes
                    .iter()
                    .map(|c| (text(&c["field"]), text(&c["message"])))
                    .collect()
            })
            .unwrap_or_default();
        let mut reason = text(&value["reason"]);
        if reason.is_empty() && code == 401 {
            reason = "Unauthorized".into();
        }
        Self {
            code,
            reason,
            message,
            causes,
        }
    }

    /// Whether the server said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == 404
    }

    /// One line: the reason, the message, and any field error the message
    /// does not already spell out.
    fn describe(&self) -> String {
        let mut line = if self.reason.is_empty() {
            format!("server error ({}): {}", self.code, self.message)
        } else {
            format!("{}: {}", self.reason, self.message)
        };
        let missing: Vec<String> = self
            .causes
            .iter()
            .filter(|(_, message)| !self.message.contains(message.as_str()) && !message.is_empty())
            .map(|(field, message)| {
                if field.is_empty() || message.starts_with(field.as_str()) {
                    message.clone()
                } else {
                    format!("{field}: {message}")
                }
            })
            .collect();
        if !missing.is_empty() {
            line.push_str(" [");
            line.push_str(&missing.join(", "));
            line.push(']');
        }
        line
    }
}

/// `type Result<T> = Result<T, client::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The global connection flags.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--server`.
    pub server: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--namespace`.
    pub namespace: Option<String>,
}

/// The kubeconfig file kubectl would read: `--kubeconfig`, else the first
/// entry of `$KUBECONFIG`, else `~/.kube/config`.
pub fn kubeconfig_path(explicit: Option<&PathBuf>) -> PathBuf {
    if let Some(path) = explicit {
        return path.clone();
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .and_then(|v| std::env::split_paths(&v).find(|p| !p.as_os_str().is_empty()))
    {
        return first;
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".kube").join("config")
}

/// A connected client: where it points and which namespace it works in.
#[derive(Clone)]
pub struct Ctl {
    client: kube::Client,
    /// The server URL (for messages).
    pub server: String,
    /// The namespace: `--namespace`, else the context's, else `default`.
    pub namespace: String,
}

impl Ctl {
    /// Builds a client from the kubeconfig and the flags. Does no IO other
    /// than reading the kubeconfig (and its CA file).
    ///
    /// # Errors
    ///
    /// [`Error::Kubeconfig`] for an unreadable or inconsistent kubeconfig,
    /// [`Error::BadUrl`] for a server that is not a URL.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        let path = kubeconfig_path(options.kubeconfig.as_ref());
        let kubeconfig_error = |message: String| Error::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let mut config = if path.exists() {
            let kubeconfig =
                Kubeconfig::read_from(&path).map_err(|e| kubeconfig_error(e.to_string()))?;
            let kube_options = KubeConfigOptions {
                context: options.context.clone(),
                ..KubeConfigOptions::default()
            };
            let has_clusters = !kubeconfig.clusters.is_empty();
            match kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options).await {
                Ok(config) => config,
                Err(_) if options.server.is_some() || !has_clusters => {
                    Self::bare_config(options.server.as_deref())?
                }
                Err(e) => return Err(kubeconfig_error(e.to_string())),
            }
        } else if options.kubeconfig.is_some() {
            return Err(kubeconfig_error("no such file".into()));
        } else {
            Self::bare_config(options.server.as_deref())?
        };
        if let Some(server) = &options.server {
            config.cluster_url = parse_url(server)?;
        }
        if let Some(token) = &options.token {
            config.auth_info = kube::config::AuthInfo::default();
            let value = header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
                Error::Kubeconfig {
                    path: "--token".into(),
                    message: e.to_string(),
                }
            })?;
            config.headers.push((header::AUTHORIZATION, value));
        }
        if let Some(namespace) = &options.namespace {
            config.default_namespace.clone_from(namespace);
        }
        config.default_retry = false;
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).map_err(|e| Error::Connect {
            url: server.clone(),
            cause: root_cause(&e),
        })?;
        Ok(Self {
            client,
            server,
            namespace,
        })
    }

    fn bare_config(server: Option<&str>) -> Result<kube::Config> {
        Ok(kube::Config::new(parse_url(
            server.unwrap_or("http://localhost:8080"),
        )?))
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<http::Response<kube::client::Body>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::ACCEPT, "application/json");
        let body = match body {
            Some((content_type, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                bytes
            }
            None => Vec::new(),
        };
        let request = builder.body(body).map_err(|e| Error::Decode {
            path: path.into(),
            message: e.to_string(),
        })?;
        let response = self
            .client
            .send(request.map(kube::client::Body::from))
            .await
            .map_err(|e| Error::Connect {
                url: self.server.clone(),
                cause: root_cause(&e),
            })?;
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            let bytes = self.read_body(response).await?;
            return Err(ApiError::from_body(status.as_u16(), &bytes).into());
        }
        Ok(response)
    }

    async fn read_body(&self, response: http::Response<kube::client::Body>) -> Result<Vec<u8>> {
        let collected = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Connect {
                url: self.server.clone(),
                cause: root_cause(&e),
            })?;
        Ok(collected.to_bytes().to_vec())
    }

    /// Sends a request and returns the JSON answer.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] when the server cannot be reached, [`Error::Api`]
    /// for an error status, [`Error::Decode`] for a body that is not JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value> {
        let response = self.send_raw(method, path, body).await?;
        let bytes = self.read_body(response).await?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`].
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`].
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(
            Method::POST,
            path,
            Some(("application/json", json_bytes(body))),
        )
        .await
    }

    /// `PUT path` with a JSON body.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`].
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(
            Method::PUT,
            path,
            Some(("application/json", json_bytes(body))),
        )
        .await
    }

    /// `PATCH path` with a JSON merge patch.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`].
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value> {
        self.request(
            Method::PATCH,
            path,
            Some(("application/merge-patch+json", json_bytes(patch))),
        )
        .await
    }

    /// `DELETE path`.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`].
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.request(Method::DELETE, path, None).await
    }

    /// `GET path` of a text body (a log), streamed chunk by chunk until the
    /// server closes it.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`] for opening the stream; each chunk may fail with
    /// [`Error::Connect`] (the connection broke).
    pub async fn stream_text(
        &self,
        path: &str,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes>> + use<>> {
        let response = self.send_raw(Method::GET, path, None).await?;
        let server = self.server.clone();
        Ok(response
            .into_body()
            .into_data_stream()
            .map_err(move |e| Error::Connect {
                url: server.clone(),
                cause: root_cause(&e),
            }))
    }

    /// Opens a WebSocket on `path` (`pods/{name}/exec`, `attach`,
    /// `portforward`) with this client's TLS and credentials, offering
    /// `v5.channel.k8s.io` then `v4.channel.k8s.io`.
    ///
    /// # Errors
    ///
    /// [`Error::Api`] when the server refuses the request,
    /// [`Error::Connect`] when it cannot be reached or does not upgrade.
    pub async fn connect_ws(&self, path: &str) -> Result<kube::client::Connection> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .body(Vec::new())
            .map_err(|e| Error::Decode {
                path: path.into(),
                message: e.to_string(),
            })?;
        self.client.connect(request).await.map_err(|e| match e {
            kube::Error::Api(status) => {
                let body = serde_json::to_vec(&status).unwrap_or_default();
                ApiError::from_body(status.code, &body).into()
            }
            other => Error::Connect {
                url: self.server.clone(),
                cause: root_cause(&other),
            },
        })
    }

    /// `GET path` of a watch: one JSON value per line, until the server
    /// closes the stream.
    ///
    /// # Errors
    ///
    /// As [`Ctl::request`] for opening the stream; each item may fail with
    /// [`Error::Connect`] (the connection broke) or [`Error::Decode`].
    pub async fn watch(&self, path: &str) -> Result<impl Stream<Item = Result<Value>> + use<>> {
        let response = self.send_raw(Method::GET, path, None).await?;
        let server = self.server.clone();
        let owned_path = path.to_string();
        let reader = response
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other)
            .into_async_read();
        Ok(reader.lines().filter_map(move |line| {
            let server = server.clone();
            let path = owned_path.clone();
            async move {
                match line {
                    Ok(line) if line.trim().is_empty() => None,
                    Ok(line) => Some(serde_json::from_str(&line).map_err(|e| Error::Decode {
                        path,
                        message: e.to_string(),
                    })),
                    Err(e) => Some(Err(Error::Connect {
                        url: server,
                        cause: e.to_string(),
                    })),
                }
            }
        }))
    }
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse_url(url: &str) -> Result<http::Uri> {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    with_scheme
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::BadUrl {
            url: url.into(),
            message: e.to_string(),
        })
}

/// The innermost message of an error chain (`Connection refused (os error
/// 111)`), which is what a user can act on.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_status_lists_every_cause_once() {
        let body = br#"{"kind":"Status","code":422,"reason":"Invalid","message":"Pod \"x\" is invalid: spec.containers[0].image: Required value","details":{"causes":[{"field":"spec.containers[0].image","message":"Required value"},{"field":"metadata.name","message":"Invalid value: \"X\""}]}}"#;
        let error = ApiError::from_body(422, body);
        assert_eq!(
            error.to_string(),
            "Invalid: Pod \"x\" is invalid: spec.containers[0].image: Required value [metadata.name: Invalid value: \"X\"]"
        );
    }

    #[test]
    fn plain_text_errors_keep_their_text() {
        let error = ApiError::from_body(404, b"404 page not found");
        assert_eq!(error.to_string(), "server error (404): 404 page not found");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("app in (a,b)"), "app%20in%20%28a%2Cb%29");
    }
}
