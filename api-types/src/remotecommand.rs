//! The wire protocol of `pods/exec` and `pods/attach` over WebSocket
//! (Kubernetes' `k8s.io/apimachinery/pkg/util/remotecommand` and
//! `apiserver/pkg/util/wsstream`): subprotocol names and their negotiation,
//! the one-byte channel prefix of every binary message, the resize message,
//! the v5 close signal, the query of a request and the `Status` that the
//! error channel carries at the end (with the command's exit code).
//!
//! Pure: no IO, so the kubelet (server side) and `ctl` (client side) share it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde::{Deserialize, Serialize};

/// `v5.channel.k8s.io`: v4 plus the close signal ([`CLOSE`]); kubectl
/// 1.30+ asks for it first.
pub const V5: &str = "v5.channel.k8s.io";
/// `v4.channel.k8s.io`: the error channel ends with a JSON `Status` (the
/// Python client speaks this one).
pub const V4: &str = "v4.channel.k8s.io";
/// `channel.k8s.io`: the first binary protocol; the error channel carries
/// a plain message. Also what a client that names no subprotocol gets.
pub const V1: &str = "channel.k8s.io";

/// The subprotocols served, best first (what a server lists when a client
/// offers none it knows).
pub const PROTOCOLS: [&str; 3] = [V5, V4, V1];

/// Channel of the command's standard input (client → server).
pub const STDIN: u8 = 0;
/// Channel of its standard output.
pub const STDOUT: u8 = 1;
/// Channel of its standard error (not opened with a TTY: merged in stdout).
pub const STDERR: u8 = 2;
/// Channel of the final status (server → client, once, at the end).
pub const ERROR: u8 = 3;
/// Channel of terminal size changes (client → server, JSON [`TerminalSize`]).
pub const RESIZE: u8 = 4;
/// v5 only: `[CLOSE, channel]` says that channel is done (stdin's EOF).
pub const CLOSE: u8 = 255;

/// `Status.reason` when the command exited non-zero.
pub const NON_ZERO_EXIT_CODE: &str = "NonZeroExitCode";
/// `StatusCause.reason` (Go's `Type`) whose message is the exit code.
pub const EXIT_CODE_CAUSE: &str = "ExitCode";

/// A negotiated subprotocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `channel.k8s.io` (or none named).
    V1,
    /// `v4.channel.k8s.io`.
    V4,
    /// `v5.channel.k8s.io`.
    V5,
}

impl Protocol {
    /// The name sent back in `Sec-WebSocket-Protocol` (`None` for a client
    /// that offered none).
    pub fn name(self) -> &'static str {
        match self {
            Self::V1 => V1,
            Self::V4 => V4,
            Self::V5 => V5,
        }
    }

    /// The protocol of this name.
    pub fn of(name: &str) -> Option<Self> {
        match name.trim() {
            V5 => Some(Self::V5),
            V4 => Some(Self::V4),
            V1 | "" => Some(Self::V1),
            _ => None,
        }
    }

    /// Whether the error channel ends with a JSON `Status` (v4+), rather
    /// than a bare message.
    pub fn status_on_error_channel(self) -> bool {
        self != Self::V1
    }

    /// Whether `[CLOSE, channel]` messages are understood (v5).
    pub fn has_close(self) -> bool {
        self == Self::V5
    }
}

/// The protocol for a `Sec-WebSocket-Protocol` header: the first the
/// client lists that is served, as `wsstream`'s handshake picks (the
/// client's order wins). No header is `channel.k8s.io`; `None` when the
/// client offered only unknown ones (Kubernetes refuses those).
pub fn negotiate(offered: Option<&str>) -> Option<Protocol> {
    let Some(offered) = offered.filter(|o| !o.trim().is_empty()) else {
        return Some(Protocol::V1);
    };
    offered
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .find_map(Protocol::of)
}

/// One binary WebSocket message: `channel` then `data`.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

/// What a received binary message means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// An empty message: ignored (servers send one at start).
    Empty,
    /// Data for `channel`.
    Data {
        /// The channel.
        channel: u8,
        /// The bytes (possibly none).
        data: &'a [u8],
    },
    /// v5: `channel` is closed by the sender.
    Close {
        /// The channel.
        channel: u8,
    },
}

/// Why a message cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A close signal not followed by exactly one channel byte.
    #[error("single channel byte should follow stream close signal, got {0} bytes")]
    BadClose(usize),
}

/// Reads a binary message under `protocol` (only v5 has [`CLOSE`]; in
/// older protocols 255 is an ordinary, unknown channel).
///
/// # Errors
///
/// [`FrameError::BadClose`] for a malformed v5 close signal.
pub fn parse(protocol: Protocol, message: &[u8]) -> Result<Message<'_>, FrameError> {
    match message {
        [] => Ok(Message::Empty),
        [CLOSE, rest @ ..] if protocol.has_close() => match rest {
            [channel] => Ok(Message::Close { channel: *channel }),
            _ => Err(FrameError::BadClose(rest.len())),
        },
        [channel, data @ ..] => Ok(Message::Data {
            channel: *channel,
            data,
        }),
    }
}

/// A terminal size (the [`RESIZE`] channel's JSON: Go's `TerminalSize`
/// has no JSON tags, so the keys are capitalised).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

impl TerminalSize {
    /// A resize message's payload; `None` if it is not one.
    pub fn parse(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

/// What an exec or attach request asks for (`PodExecOptions` /
/// `PodAttachOptions` from the query).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The command and its arguments (exec; empty for attach).
    pub command: Vec<String>,
    /// The container (may be empty: the pod's only one).
    pub container: String,
    /// Pass standard input.
    pub stdin: bool,
    /// Return standard output.
    pub stdout: bool,
    /// Return standard error (never with `tty`: merged into stdout).
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

/// Why a request's options are refused (Kubernetes' messages).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    /// None of stdin, stdout, stderr.
    #[error("you must specify at least 1 of stdin, stdout, stderr")]
    NoStreams,
    /// An exec with no command.
    #[error("you must specify at least one command for the container")]
    NoCommand,
    /// A boolean that is not one.
    #[error("invalid value {value:?} for {key}: must be true or false")]
    NotABool {
        /// The parameter.
        key: String,
        /// Its value.
        value: String,
    },
}

fn boolean(key: &str, value: &str) -> Result<bool, OptionsError> {
    match value {
        "true" | "1" | "True" | "TRUE" | "t" | "T" => Ok(true),
        "false" | "0" | "False" | "FALSE" | "f" | "F" | "" => Ok(false),
        _ => Err(OptionsError::NotABool {
            key: key.to_string(),
            value: value.to_string(),
        }),
    }
}

impl Options {
    /// From decoded query pairs (`command` repeated, in order). Unknown
    /// keys are ignored, as Kubernetes' query decoding does.
    ///
    /// # Errors
    ///
    /// A boolean that does not parse.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, OptionsError> {
        let mut options = Self::default();
        for (key, value) in pairs {
            match key {
                "command" => options.command.push(value.to_string()),
                "container" => options.container = value.to_string(),
                "stdin" => options.stdin = boolean(key, value)?,
                "stdout" => options.stdout = boolean(key, value)?,
                "stderr" => options.stderr = boolean(key, value)?,
                "tty" => options.tty = boolean(key, value)?,
                _ => {}
            }
        }
        // With a TTY, stderr is stdout (Kubernetes drops it, not refuses).
        if options.tty {
            options.stderr = false;
        }
        Ok(options)
    }

    /// Kubernetes' checks of a request: a stream, and for exec a command.
    ///
    /// # Errors
    ///
    /// [`OptionsError::NoStreams`], [`OptionsError::NoCommand`].
    pub fn validate(&self, exec: bool) -> Result<(), OptionsError> {
        if exec && self.command.is_empty() {
            return Err(OptionsError::NoCommand);
        }
        if !(self.stdin || self.stdout || self.stderr) {
            return Err(OptionsError::NoStreams);
        }
        Ok(())
    }

    /// Query pairs in Kubernetes' order (for a request to the kubelet, or a
    /// client's request); the caller percent-encodes them.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> = self
            .command
            .iter()
            .map(|c| ("command", c.clone()))
            .collect();
        if !self.container.is_empty() {
            pairs.push(("container", self.container.clone()));
        }
        for (key, value) in [
            ("stdin", self.stdin),
            ("stdout", self.stdout),
            ("stderr", self.stderr),
            ("tty", self.tty),
        ] {
            pairs.push((key, value.to_string()));
        }
        pairs
    }
}

/// The error channel's final `Status` of a command that ran to its end:
/// `Success` for 0; else `Failure`, reason [`NON_ZERO_EXIT_CODE`] with the
/// code as an [`EXIT_CODE_CAUSE`] cause (what kubectl and the Python
/// client turn into their exit code), as Kubernetes' kubelet writes it.
pub fn exit_status(code: i64, command: &[String]) -> Status {
    if code == 0 {
        return Status {
            status: Some("Success".into()),
            ..Status::default()
        };
    }
    Status {
        status: Some("Failure".into()),
        reason: Some(NON_ZERO_EXIT_CODE.into()),
        message: Some(format!(
            "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
        )),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                reason: Some(EXIT_CODE_CAUSE.into()),
                message: Some(code.to_string()),
                field: None,
            }]),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}

/// The error channel's `Status` of a stream that failed (code 500,
/// `InternalError`, as Kubernetes' `NewInternalError`).
pub fn internal_error(message: &str) -> Status {
    Status {
        status: Some("Failure".into()),
        reason: Some("InternalError".into()),
        code: Some(500),
        message: Some(format!("Internal error occurred: {message}")),
        details: Some(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(message.to_string()),
                ..StatusCause::default()
            }]),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}

/// The error channel's payload for `status` under `protocol`: JSON (v4+),
/// or for v1 nothing on success and the bare message on failure.
pub fn error_payload(protocol: Protocol, status: &Status) -> Vec<u8> {
    if protocol.status_on_error_channel() {
        return serde_json::to_vec(status).unwrap_or_default();
    }
    if status.status.as_deref() == Some("Success") {
        Vec::new()
    } else {
        status.message.clone().unwrap_or_default().into_bytes()
    }
}

/// How a stream ended, read from the error channel (client side).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command exited with this code (0 included).
    Exited(i32),
    /// The stream failed: the server's message.
    Failed(String),
}

/// Reads the error channel's payload under `protocol` (empty: success).
pub fn outcome(protocol: Protocol, payload: &[u8]) -> Outcome {
    if payload.is_empty() {
        return Outcome::Exited(0);
    }
    if !protocol.status_on_error_channel() {
        return Outcome::Failed(String::from_utf8_lossy(payload).into_owned());
    }
    let Ok(status) = serde_json::from_slice::<Status>(payload) else {
        return Outcome::Failed(String::from_utf8_lossy(payload).into_owned());
    };
    if status.status.as_deref() == Some("Success") {
        return Outcome::Exited(0);
    }
    let code = (status.reason.as_deref() == Some(NON_ZERO_EXIT_CODE))
        .then(|| status.details.as_ref()?.causes.as_ref())
        .flatten()
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some(EXIT_CODE_CAUSE))
        })
        .and_then(|c| c.message.as_deref()?.parse().ok());
    match code {
        Some(code) => Outcome::Exited(code),
        None => Outcome::Failed(status.message.unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_first_known_protocol_wins() {
        assert_eq!(
            negotiate(Some("v5.channel.k8s.io, v4.channel.k8s.io")),
            Some(Protocol::V5)
        );
        assert_eq!(
            negotiate(Some("v4.channel.k8s.io,v5.channel.k8s.io")),
            Some(Protocol::V4)
        );
        assert_eq!(
            negotiate(Some("base64.channel.k8s.io, channel.k8s.io")),
            Some(Protocol::V1)
        );
        assert_eq!(negotiate(None), Some(Protocol::V1));
        assert_eq!(negotiate(Some("v9.channel.k8s.io")), None);
    }

    #[test]
    fn messages_carry_their_channel_in_the_first_byte() {
        assert_eq!(frame(STDOUT, b"hi"), b"\x01hi");
        assert_eq!(
            parse(Protocol::V5, b"\x00abc"),
            Ok(Message::Data {
                channel: STDIN,
                data: b"abc"
            })
        );
        assert_eq!(parse(Protocol::V5, b""), Ok(Message::Empty));
        assert_eq!(
            parse(Protocol::V5, &[CLOSE, STDIN]),
            Ok(Message::Close { channel: STDIN })
        );
        assert_eq!(
            parse(Protocol::V5, &[CLOSE, 0, 1]),
            Err(FrameError::BadClose(2))
        );
        // Before v5, 255 is just a channel nobody opened.
        assert_eq!(
            parse(Protocol::V4, &[CLOSE, STDIN]),
            Ok(Message::Data {
                channel: CLOSE,
                data: &[STDIN]
            })
        );
    }

    #[test]
    fn resize_is_go_json_with_capitalised_keys() {
        assert_eq!(
            TerminalSize::parse(br#"{"Width":120,"Height":40}"#),
            Some(TerminalSize {
                width: 120,
                height: 40
            })
        );
        assert_eq!(TerminalSize::parse(b"junk"), None);
    }

    #[test]
    fn options_read_as_kubernetes_reads_them() {
        let options = Options::from_pairs([
            ("command", "sh"),
            ("command", "-c"),
            ("command", "exit 3"),
            ("container", "c"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ])
        .unwrap();
        assert_eq!(options.command, ["sh", "-c", "exit 3"]);
        assert!(options.stdout && options.tty && !options.stderr && !options.stdin);
        assert_eq!(options.validate(true), Ok(()));
        assert_eq!(
            Options::default().validate(true),
            Err(OptionsError::NoCommand)
        );
        assert_eq!(
            Options::default().validate(false),
            Err(OptionsError::NoStreams)
        );
        assert!(Options::from_pairs([("stdin", "maybe")]).is_err());
        let back = Options::from_pairs(
            options
                .to_pairs()
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(back, options);
    }

    #[test]
    fn exit_codes_travel_in_the_status_cause() {
        let command = ["sh".to_string(), "-c".into(), "exit 3".into()];
        for protocol in [Protocol::V4, Protocol::V5] {
            let ok = error_payload(protocol, &exit_status(0, &command));
            let value: serde_json::Value = serde_json::from_slice(&ok).unwrap();
            assert_eq!(value["status"], "Success");
            assert_eq!(outcome(protocol, &ok), Outcome::Exited(0));
            let three = error_payload(protocol, &exit_status(3, &command));
            let value: serde_json::Value = serde_json::from_slice(&three).unwrap();
            assert_eq!(value["reason"], "NonZeroExitCode");
            assert_eq!(
                value["details"]["causes"][0],
                serde_json::json!({"reason": "ExitCode", "message": "3"})
            );
            assert_eq!(outcome(protocol, &three), Outcome::Exited(3));
            let failed = error_payload(protocol, &internal_error("boom"));
            assert_eq!(
                outcome(protocol, &failed),
                Outcome::Failed("Internal error occurred: boom".into())
            );
        }
        assert!(error_payload(Protocol::V1, &exit_status(0, &command)).is_empty());
        assert_eq!(
            outcome(
                Protocol::V1,
                &error_payload(Protocol::V1, &internal_error("x"))
            ),
            Outcome::Failed("Internal error occurred: x".into())
        );
    }
}
