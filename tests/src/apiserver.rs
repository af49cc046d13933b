//! An in-process apiserver on a free loopback port, over a real etcd.
//!
//! `TestCluster::start()` gives a fresh etcd and an apiserver that is ready
//! (its bootstrap objects exist); dropping it stops both.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use apiserver::Config;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::etcd::Etcd;

/// A running apiserver.
pub struct TestApiServer {
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), apiserver::ServerError>>>,
}

impl TestApiServer {
    /// Starts an apiserver with `config` (its bind address and port are
    /// ignored: it listens on a free loopback port) and waits until
    /// `/readyz` answers ok.
    pub async fn start(config: Config) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the apiserver")?;
        let address = listener.local_addr()?;
        let scheme = if config.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{address}");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(apiserver::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        let server = Self {
            url,
            stop: Some(stop),
            task: Some(task),
        };
        if scheme == "http" {
            server.wait_ready(Duration::from_secs(30)).await?;
        }
        Ok(server)
    }

    /// Polls `/readyz` until it says ok or `limit` passes.
    pub async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(response) = client.get(format!("{}/readyz", self.url)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("apiserver at {} not ready within {limit:?}", self.url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server and waits for it to finish draining.
    pub async fn stop(mut self) -> Result<()> {
        self.stop_inner().await
    }

    async fn stop_inner(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.context("apiserver task panicked")??;
        }
        Ok(())
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// etcd plus an apiserver, and an HTTP client for the API.
pub struct TestCluster {
    /// The apiserver (dropped before etcd).
    pub apiserver: TestApiServer,
    /// The etcd under it.
    pub etcd: Etcd,
    /// A plain HTTP client.
    pub http: reqwest::Client,
}

impl TestCluster {
    /// A fresh etcd and an apiserver with default flags.
    pub async fn start() -> Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// A fresh etcd and an apiserver whose config `adjust` may change.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Result<Self> {
        let etcd = tokio::task::spawn_blocking(Etcd::start)
            .await
            .context("etcd start panicked")??;
        let mut config = Config::with_etcd(etcd.endpoints());
        adjust(&mut config);
        let apiserver = TestApiServer::start(config).await?;
        Ok(Self {
            apiserver,
            etcd,
            http: reqwest::Client::new(),
        })
    }

    /// The API's base URL.
    pub fn url(&self) -> &str {
        self.apiserver.url()
    }

    /// `GET path` → (status, JSON body).
    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, None, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, Some(body), None)
            .await
    }

    /// `PUT path` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::PUT, path, Some(body), None)
            .await
    }

    /// `PATCH path` with a body of the given patch content type.
    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> Result<(u16, Value)> {
        self.send(reqwest::Method::PATCH, path, Some(body), Some(content_type))
            .await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::DELETE, path, None, None).await
    }

    /// Sends a request and decodes the JSON answer (`Null` for non-JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        content_type: Option<&str>,
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.url()));
        if let Some(body) = body {
            request = request
                .header("content-type", content_type.unwrap_or("application/json"))
                .body(serde_json::to_vec(body)?);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("request to {path}"))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// Sends raw bytes with a content type.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Value)> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// The apiserver's `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        let url = format!("{}/metrics", self.url());
        Ok(self.http.get(url).send().await?.text().await?)
    }

    /// Every key under `/registry` in etcd, read directly.
    pub async fn etcd_keys(&self) -> Result<Vec<String>> {
        let mut client = self.etcd.client().await?;
        let response = client
            .get(
                "/registry/",
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            )
            .await?;
        response
            .kvs()
            .iter()
            .map(|kv| Ok(kv.key_str()?.to_string()))
            .collect()
    }
}

/// An object's `metadata.resourceVersion` as the etcd revision it is.
pub fn revision_of(object: &Value) -> Result<i64> {
    object["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .parse()
        .context("resourceVersion is not a number")
}

/// Opens a watch and yields its events one line at a time.
pub struct WatchLines {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl WatchLines {
    /// Starts watching `path` (which must ask for a watch).
    pub async fn open(cluster: &TestCluster, path: &str) -> Result<Self> {
        let response = cluster
            .http
            .get(format!("{}{path}", cluster.url()))
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("watch {path} answered {status}: {text}");
        }
        Ok(Self {
            response,
            buffer: Vec::new(),
        })
    }

    /// The next event, or an error if none comes within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).context("watch event is not JSON");
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .context("no watch event in time")??;
            match chunk {
                Some(bytes) => self.buffer.extend_from_slice(&bytes),
                None => bail!(
                    "the watch ended (unterminated: {:?})",
                    String::from_utf8_lossy(&self.buffer)
                ),
            }
        }
    }
}
