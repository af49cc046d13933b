//! The real runtime: Docker through bollard over a unix socket.
//!
//! The connection is made lazily and remade after a failure, so a kubelet
//! started before dockerd (or outliving a dockerd restart) recovers; while
//! the socket is missing every call is `Error::Unreachable`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerState, Error, Result, Runtime, LABEL_POD_UID,
};

/// Docker API version spoken: 1.41 is dockerd 20.10's, and later daemons accept it.
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Seconds a single Docker request may take.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Docker over `unix://PATH`.
pub struct DockerRuntime {
    endpoint: String,
    client: Mutex<Option<Docker>>,
}

impl DockerRuntime {
    /// A runtime for `endpoint` (`unix:///var/run/docker.sock` or a bare
    /// path). Nothing is connected until the first call.
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_string(),
            client: Mutex::new(None),
        }
    }

    async fn docker(&self) -> Result<Docker> {
        let mut client = self.client.lock().await;
        if let Some(docker) = client.as_ref() {
            return Ok(docker.clone());
        }
        let path = self.endpoint.trim_start_matches("unix://");
        let docker = Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &API_VERSION)
            .map_err(|e| Error::Unreachable(e.to_string()))?;
        *client = Some(docker.clone());
        Ok(docker)
    }

    async fn forget(&self) {
        *self.client.lock().await = None;
    }

    async fn inspect(&self, docker: &Docker, id: &str) -> Result<ContainerInfo> {
        let r = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.map_err(e, id))?;
        let state = r.state.unwrap_or_default();
        let config = r.config.unwrap_or_default();
        let running = state.running.unwrap_or(false);
        let started = parse_time(state.started_at.as_deref());
        let status = if running {
            ContainerState::Running
        } else if started.is_none() {
            ContainerState::Created
        } else {
            ContainerState::Exited
        };
        let ip = r
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| {
                nets.into_values()
                    .filter_map(|e| e.ip_address)
                    .find(|ip| !ip.is_empty())
            });
        Ok(ContainerInfo {
            id: r.id.unwrap_or_else(|| id.to_string()),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            state: status,
            image: config.image.unwrap_or_default(),
            image_id: r.image.unwrap_or_default(),
            exit_code: state.exit_code.unwrap_or_default(),
            oom_killed: state.oom_killed.unwrap_or(false),
            created_at: parse_time(r.created.as_deref()),
            started_at: started,
            finished_at: parse_time(state.finished_at.as_deref()),
            ip,
        })
    }

    fn map_err(&self, e: bollard::errors::Error, what: &str) -> Error {
        docker_error(&self.endpoint, e, what)
    }

    async fn call_failed(&self, e: &Error) {
        if matches!(e, Error::Unreachable(_)) {
            self.forget().await;
        }
    }

    async fn pull(&self, docker: &Docker, image: &str) -> Result<()> {
        let (name, tag) = split_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(tag)
            .build();
        let mut stream = docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                let message = match e {
                    bollard::errors::Error::DockerResponseServerError { message, .. } => message,
                    bollard::errors::Error::DockerStreamError { error } => error,
                    other => other.to_string(),
                };
                return Err(Error::ImagePull {
                    image: image.to_string(),
                    message,
                });
            }
        }
        Ok(())
    }
}

/// `name:tag` → (`name`, `tag`), `latest` when untagged (a `:` in a registry host is not a tag).
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Docker's RFC 3339 times; its zero time (`0001-01-01...`) is `None`.
fn parse_time(text: Option<&str>) -> Option<jiff::Timestamp> {
    let text = text?;
    if text.starts_with("0001-") {
        return None;
    }
    text.parse().ok()
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn ping(&self) -> Result<()> {
        let docker = self.docker().await?;
        let result = docker
            .ping()
            .await
            .map(|_| ())
            .map_err(|e| self.map_err(e, "ping"));
        if let Err(e) = &result {
            self.call_failed(e).await;
        }
        result
    }

    async fn list_pod_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>> {
        let docker = self.docker().await?;
        let label = match pod_uid {
            Some(uid) => format!("{LABEL_POD_UID}={uid}"),
            None => LABEL_POD_UID.to_string(),
        };
        let filters: HashMap<&str, Vec<String>> = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = match docker.list_containers(Some(options)).await {
            Ok(s) => s,
            Err(e) => {
                let e = self.map_err(e, "list");
                self.call_failed(&e).await;
                return Err(e);
            }
        };
        let mut out = Vec::with_capacity(summaries.len());
        for summary in summaries {
            let Some(id) = summary.id else { continue };
            match self.inspect(&docker, &id).await {
                Ok(info) => out.push(info),
                Err(Error::NotFound(_)) => {} // removed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        let docker = self.docker().await?;
        match docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => {
                let e = self.map_err(e, image);
                self.call_failed(&e).await;
                Err(e)
            }
        }
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        let docker = self.docker().await?;
        self.pull(&docker, image).await
    }

    async fn create_container(&self, c: &ContainerConfig) -> Result<String> {
        let docker = self.docker().await?;
        let port_bindings = (!c.port_bindings.is_empty()).then(|| {
            c.port_bindings
                .iter()
                .map(|p| {
                    (
                        format!("{}/{}", p.container_port, p.protocol),
                        Some(vec![bollard::models::PortBinding {
                            host_ip: Some(p.host_ip.clone()),
                            host_port: Some(p.host_port.to_string()),
                        }]),
                    )
                })
                .collect::<HashMap<_, _>>()
        });
        let exposed = (!c.port_bindings.is_empty()).then(|| {
            c.port_bindings
                .iter()
                .map(|p| format!("{}/{}", p.container_port, p.protocol))
                .collect::<Vec<_>>()
        });
        let body = ContainerCreateBody {
            image: Some(c.image.clone()),
            hostname: c.hostname.clone(),
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            working_dir: c.working_dir.clone(),
            env: Some(c.env.clone()),
            labels: Some(c.labels.clone().into_iter().collect()),
            exposed_ports: exposed,
            // As Kubernetes' dockershim: `attach -i` needs the input open.
            open_stdin: Some(c.stdin),
            stdin_once: Some(c.stdin_once),
            tty: Some(c.tty),
            host_config: Some(HostConfig {
                network_mode: c.network_mode.clone(),
                port_bindings,
                binds: (!c.binds.is_empty()).then(|| c.binds.clone()),
                memory: c.memory_limit,
                nano_cpus: c.nano_cpus,
                dns: c.dns.as_ref().map(|d| d.nameservers.clone()),
                dns_search: c.dns.as_ref().map(|d| d.searches.clone()),
                dns_options: c.dns.as_ref().map(|d| d.options.clone()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&c.name)
            .build();
        match docker.create_container(Some(options), body).await {
            Ok(r) => Ok(r.id),
            Err(e) => {
                let e = self.map_err(e, &c.name);
                self.call_failed(&e).await;
                Err(e)
            }
        }
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        docker
            .start_container(id, None)
            .await
            .map_err(|e| self.map_err(e, id))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let docker = self.docker().await?;
        let secs = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::default().t(secs).build();
        match docker.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // 304: already stopped.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(self.map_err(e, id)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let docker = self.docker().await?;
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.map_err(e, id) {
                Error::NotFound(_) => Ok(()),
                // "removal already in progress"
                Error::Other(m) if m.contains("already in progress") => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn exec(&self, id: &str, cmd: &[String]) -> Result<i64> {
        let docker = self.docker().await?;
        let options = bollard::exec::CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..bollard::exec::CreateExecOptions::default()
        };
        let exec = docker
            .create_exec(id, options)
            .await
            .map_err(|e| self.map_err(e, id))?;
        match docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| self.map_err(e, id))?
        {
            bollard::exec::StartExecResults::Attached { mut output, .. } => {
                while let Some(chunk) = output.next().await {
                    chunk.map_err(|e| self.map_err(e, id))?;
                }
            }
            bollard::exec::StartExecResults::Detached => {}
        }
        let inspect = docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| self.map_err(e, id))?;
        Ok(inspect.exit_code.unwrap_or(-1))
    }

    async fn network_namespace(&self, id: &str) -> Result<std::path::PathBuf> {
        let docker = self.docker().await?;
        let inspected = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| self.map_err(e, id))?;
        let state = inspected.state.unwrap_or_default();
        match state.pid {
            Some(pid) if pid > 0 && state.running.unwrap_or(false) => {
                Ok(std::path::PathBuf::from(format!("/proc/{pid}/ns/net")))
            }
            _ => Err(Error::Other(format!("container {id} is not running"))),
        }
    }

    async fn exec_session(
        &self,
        id: &str,
        options: &api_types::remotecommand::Options,
    ) -> Result<crate::exec::Session> {
        let docker = self.docker().await?;
        exec_session(docker, &self.endpoint, id, options).await
    }

    async fn attach_session(
        &self,
        id: &str,
        options: &api_types::remotecommand::Options,
    ) -> Result<crate::exec::Session> {
        let docker = self.docker().await?;
        attach_session(docker, &self.endpoint, id, options).await
    }

    async fn logs(&self, id: &str, tail: Option<u64>) -> Result<String> {
        let docker = self.docker().await?;
        let tail = tail.map_or_else(|| "all".to_string(), |t| t.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail(&tail)
            .build();
        let mut stream = docker.logs(id, Some(options));
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.map_err(e, id))?;
            out.extend_from_slice(&chunk.into_bytes());
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    async fn follow_logs(
        &self,
        id: &str,
        options: &crate::runtime::LogOptions,
    ) -> Result<futures::stream::BoxStream<'static, Result<Vec<u8>>>> {
        let docker = self.docker().await?;
        let tail = options
            .tail
            .map_or_else(|| "all".to_string(), |t| t.to_string());
        // Docker's `since` is whole seconds and 0 means "from the start":
        // a time before 1970-01-01T00:00:01 asks for everything anyway.
        let since = options
            .since
            .map_or(0, |s| i32::try_from(s.max(0)).unwrap_or(i32::MAX));
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .timestamps(options.timestamps)
            .since(since)
            .tail(&tail)
            .build();
        let endpoint = self.endpoint.clone();
        let id = id.to_string();
        Ok(docker
            .logs(&id.clone(), Some(options))
            .map(move |chunk| {
                chunk
                    .map(|c| c.into_bytes().to_vec())
                    .map_err(|e| docker_error(&endpoint, e, &id))
            })
            .boxed())
    }
}

/// A bollard error as the runtime reports it: 404 is `NotFound`, another
/// answer from Docker `Other`, no answer `Unreachable` (retryable).
fn docker_error(endpoint: &str, e: bollard::errors::Error, what: &str) -> Error {
    match e {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        } => Error::NotFound(format!("{what}: {message}")),
        bollard::errors::Error::DockerResponseServerError { message, .. } => Error::Other(message),
        other => Error::Unreachable(format!("{endpoint}: {other}")),
    }
}

/// Docker's output chunks as the session's.
fn session_output(
    endpoint: &str,
    id: &str,
    output: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = std::result::Result<
                        bollard::container::LogOutput,
                        bollard::errors::Error,
                    >,
                > + Send,
        >,
    >,
) -> futures::stream::BoxStream<'static, Result<crate::exec::Output>> {
    use crate::exec::Output;
    use bollard::container::LogOutput;
    let (endpoint, id) = (endpoint.to_string(), id.to_string());
    Box::pin(output.filter_map(move |chunk| {
        let item = match chunk {
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                Some(Ok(Output::Stdout(message.to_vec())))
            }
            Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message.to_vec()))),
            Ok(LogOutput::StdIn { .. }) => None,
            Err(e) => Some(Err(docker_error(&endpoint, e, &id))),
        };
        std::future::ready(item)
    }))
}

/// `docker exec` of `options.command` in container `id`, attached.
async fn exec_session(
    docker: Docker,
    endpoint: &str,
    id: &str,
    options: &api_types::remotecommand::Options,
) -> Result<crate::exec::Session> {
    let config = bollard::exec::CreateExecOptions {
        cmd: Some(options.command.clone()),
        attach_stdin: Some(options.stdin),
        attach_stdout: Some(options.stdout),
        attach_stderr: Some(options.stderr),
        tty: Some(options.tty),
        ..bollard::exec::CreateExecOptions::default()
    };
    let exec = docker
        .create_exec(id, config)
        .await
        .map_err(|e| docker_error(endpoint, e, id))?;
    let start = bollard::exec::StartExecOptions {
        detach: false,
        tty: options.tty,
        output_capacity: None,
    };
    let bollard::exec::StartExecResults::Attached { output, input } = docker
        .start_exec(&exec.id, Some(start))
        .await
        .map_err(|e| docker_error(endpoint, e, id))?
    else {
        return Err(Error::Other(format!("exec in {id} started detached")));
    };
    Ok(crate::exec::Session {
        input: options.stdin.then_some(input),
        output: session_output(endpoint, id, output),
        control: Box::new(DockerExec {
            docker,
            endpoint: endpoint.to_string(),
            container: id.to_string(),
            exec: exec.id,
        }),
    })
}

/// `docker attach` to container `id`'s main process.
async fn attach_session(
    docker: Docker,
    endpoint: &str,
    id: &str,
    options: &api_types::remotecommand::Options,
) -> Result<crate::exec::Session> {
    let attach = bollard::query_parameters::AttachContainerOptionsBuilder::default()
        .stream(true)
        .logs(false)
        .stdin(options.stdin)
        .stdout(options.stdout)
        .stderr(options.stderr)
        .build();
    let attached = docker
        .attach_container(id, Some(attach))
        .await
        .map_err(|e| docker_error(endpoint, e, id))?;
    Ok(crate::exec::Session {
        input: options.stdin.then_some(attached.input),
        output: session_output(endpoint, id, attached.output),
        control: Box::new(DockerAttach {
            docker,
            endpoint: endpoint.to_string(),
            container: id.to_string(),
        }),
    })
}

/// The handle on one `docker exec`.
struct DockerExec {
    docker: Docker,
    endpoint: String,
    container: String,
    exec: String,
}

#[async_trait]
impl crate::exec::Control for DockerExec {
    /// Docker refuses to resize an exec whose process has not started
    /// yet, and `start_exec` answers before it has: the client's first
    /// size (sent at once) would be lost, as the Docker CLI's would but for
    /// its retries. So: retry, briefly, until the process runs, unless it
    /// has already ended.
    async fn resize(&self, size: api_types::remotecommand::TerminalSize) -> Result<()> {
        let mut pause = Duration::from_millis(1);
        let mut attempts = 0;
        loop {
            let options = bollard::exec::ResizeExecOptions {
                height: size.height,
                width: size.width,
            };
            let error = match self.docker.resize_exec(&self.exec, options).await {
                Ok(()) => return Ok(()),
                Err(e) => docker_error(&self.endpoint, e, &self.container),
            };
            attempts += 1;
            let ended = self
                .docker
                .inspect_exec(&self.exec)
                .await
                .is_ok_and(|i| i.running != Some(true) && i.exit_code.is_some());
            if ended || attempts == 25 {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn exit_code(&self) -> Result<Option<i64>> {
        // The output ends a moment before Docker records the exit: look
        // again soon (this wait is part of every exec's round trip), then
        // less often, about a second in all.
        let mut pause = Duration::from_millis(1);
        for _ in 0..60 {
            let inspect = self
                .docker
                .inspect_exec(&self.exec)
                .await
                .map_err(|e| docker_error(&self.endpoint, e, &self.container))?;
            if inspect.running != Some(true) {
                return Ok(Some(inspect.exit_code.unwrap_or(-1)));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Err(Error::Other(format!(
            "exec {} in {} still runs after its output ended",
            self.exec, self.container
        )))
    }

    /// Docker does not end an exec whose connection closed (without a TTY
    /// nothing tells the process), so it is killed by a second exec in the
    /// container: `kill -9` of its PID as the container sees it (the
    /// `NSpid` of the host PID Docker reports).
    async fn kill(&self) -> Result<()> {
        let inspect = self
            .docker
            .inspect_exec(&self.exec)
            .await
            .map_err(|e| docker_error(&self.endpoint, e, &self.container))?;
        let Some(pid) = inspect
            .pid
            .filter(|p| *p > 0 && inspect.running == Some(true))
        else {
            return Ok(());
        };
        let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
            .await
            .map_err(|e| Error::Other(format!("exec {} (pid {pid}): {e}", self.exec)))?;
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|ids| ids.split_whitespace().last())
            .ok_or_else(|| Error::Other(format!("pid {pid} has no NSpid")))?
            .to_string();
        let code = exec_to_end(
            &self.docker,
            &self.endpoint,
            &self.container,
            &["kill", "-9", &inner],
        )
        .await?;
        tracing::debug!(container = %self.container, exec = %self.exec, %inner, code, "killed the exec of a vanished client");
        Ok(())
    }
}

/// Runs `cmd` in `container` to its end; its exit code.
async fn exec_to_end(
    docker: &Docker,
    endpoint: &str,
    container: &str,
    cmd: &[&str],
) -> Result<i64> {
    let options = bollard::exec::CreateExecOptions {
        cmd: Some(cmd.iter().map(|s| (*s).to_string()).collect()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..bollard::exec::CreateExecOptions::default()
    };
    let exec = docker
        .create_exec(container, options)
        .await
        .map_err(|e| docker_error(endpoint, e, container))?;
    if let bollard::exec::StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&exec.id, None)
        .await
        .map_err(|e| docker_error(endpoint, e, container))?
    {
        while output.next().await.is_some() {}
    }
    let inspect = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| docker_error(endpoint, e, container))?;
    Ok(inspect.exit_code.unwrap_or(-1))
}

/// The handle on one `docker attach`.
struct DockerAttach {
    docker: Docker,
    endpoint: String,
    container: String,
}

#[async_trait]
impl crate::exec::Control for DockerAttach {
    async fn resize(&self, size: api_types::remotecommand::TerminalSize) -> Result<()> {
        let options = bollard::query_parameters::ResizeContainerTTYOptionsBuilder::default()
            .h(i32::from(size.height))
            .w(i32::from(size.width))
            .build();
        self.docker
            .resize_container_tty(&self.container, options)
            .await
            .map_err(|e| docker_error(&self.endpoint, e, &self.container))
    }

    async fn exit_code(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    /// Detaching leaves the container running, as Kubernetes does.
    async fn kill(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(
            split_tag("mini-k8s/pause:latest"),
            ("mini-k8s/pause", "latest")
        );
        assert_eq!(split_tag("host:5000/img"), ("host:5000/img", "latest"));
        assert_eq!(split_tag("host:5000/img:v1"), ("host:5000/img", "v1"));
    }

    #[test]
    fn docker_zero_times_are_none() {
        assert_eq!(parse_time(Some("0001-01-01T00:00:00Z")), None);
        assert!(parse_time(Some("2024-05-01T10:00:00.123456789Z")).is_some());
    }
}
