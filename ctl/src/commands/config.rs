//! `ctl config`: read and edit the kubeconfig file kubectl uses
//! (`--kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`), keeping
//! every key this tool does not know.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Value};

use crate::{client, emit, GlobalArgs};

/// Flags of `config`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config verb.
    #[command(subcommand)]
    pub command: ConfigCommand,
}

/// `config` verbs. `set-cluster --server`, `set-credentials --token` and
/// `set-context --namespace` are the global flags of those names.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the kubeconfig (tokens redacted unless --raw).
    View {
        /// Show secrets.
        #[arg(long)]
        raw: bool,
        /// Only what the current context uses.
        #[arg(long)]
        minify: bool,
    },
    /// Set a cluster entry.
    SetCluster {
        /// Cluster name.
        name: String,
        /// CA certificate file.
        #[arg(long)]
        certificate_authority: Option<String>,
        /// Skip TLS verification.
        #[arg(long)]
        insecure_skip_tls_verify: Option<bool>,
    },
    /// Set a user entry.
    SetCredentials {
        /// User name.
        name: String,
        /// Basic-auth user.
        #[arg(long)]
        username: Option<String>,
        /// Basic-auth password.
        #[arg(long)]
        password: Option<String>,
    },
    /// Set a context entry.
    SetContext {
        /// Context name (default: the current context).
        name: Option<String>,
        /// Cluster of the context.
        #[arg(long)]
        cluster: Option<String>,
        /// User of the context.
        #[arg(long)]
        user: Option<String>,
        /// Set the current context instead of naming one.
        #[arg(long)]
        current: bool,
    },
    /// Set the current context.
    UseContext {
        /// Context name.
        name: String,
    },
    /// Print the current context.
    CurrentContext,
    /// List the contexts.
    GetContexts,
}

/// Runs `config`.
///
/// # Errors
///
/// An unreadable or unwritable file, or a context that does not exist.
pub fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let path = client::kubeconfig_path(global.kubeconfig.as_ref());
    let mut config = load(&path)?;
    match args.command {
        ConfigCommand::View { raw, minify } => {
            if minify {
                config = minified(&config)?;
            }
            if !raw {
                redact(&mut config);
            }
            emit(&api_types::yaml::to_string(&config)?);
            return Ok(());
        }
        ConfigCommand::CurrentContext => {
            let current = text(&config, "current-context");
            if current.is_empty() {
                bail!("current-context is not set");
            }
            emit(&format!("{current}\n"));
            return Ok(());
        }
        ConfigCommand::GetContexts => {
            let current = text(&config, "current-context");
            let mut rows = vec![["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
                .map(String::from)
                .to_vec()];
            for entry in entries(&config, "contexts") {
                let name = text(entry, "name");
                let context = entry.get("context").cloned().unwrap_or_default();
                rows.push(vec![
                    if name == current {
                        "*".into()
                    } else {
                        String::new()
                    },
                    name,
                    text(&context, "cluster"),
                    text(&context, "user"),
                    text(&context, "namespace"),
                ]);
            }
            emit(&crate::printers::render(&rows));
            return Ok(());
        }
        ConfigCommand::SetCluster {
            name,
            certificate_authority,
            insecure_skip_tls_verify,
        } => {
            let fields = [
                ("server", global.server.clone().map(Value::from)),
                (
                    "certificate-authority",
                    certificate_authority.map(Value::from),
                ),
                (
                    "insecure-skip-tls-verify",
                    insecure_skip_tls_verify.map(Value::from),
                ),
            ];
            set_entry(&mut config, "clusters", "cluster", &name, &fields);
            emit(&format!("Cluster \"{name}\" set.\n"));
        }
        ConfigCommand::SetCredentials {
            name,
            username,
            password,
        } => {
            let fields = [
                ("token", global.token.clone().map(Value::from)),
                ("username", username.map(Value::from)),
                ("password", password.map(Value::from)),
            ];
            set_entry(&mut config, "users", "user", &name, &fields);
            emit(&format!("User \"{name}\" set.\n"));
        }
        ConfigCommand::SetContext {
            name,
            cluster,
            user,
            current,
        } => {
            let name = match name {
                Some(name) if !current => name,
                _ => {
                    let current = text(&config, "current-context");
                    if current.is_empty() {
                        bail!("no context name given and current-context is not set");
                    }
                    current
                }
            };
            let existed = find(&config, "contexts", &name).is_some();
            let fields = [
                ("cluster", cluster.map(Value::from)),
                ("user", user.map(Value::from)),
                ("namespace", global.namespace.clone().map(Value::from)),
            ];
            set_entry(&mut config, "contexts", "context", &name, &fields);
            let verb = if existed { "modified" } else { "created" };
            emit(&format!("Context \"{name}\" {verb}.\n"));
        }
        ConfigCommand::UseContext { name } => {
            if find(&config, "contexts", &name).is_none() {
                bail!("no context exists with the name: \"{name}\"");
            }
            set(&mut config, "current-context", Value::from(name.clone()));
            emit(&format!("Switched to context \"{name}\".\n"));
        }
    }
    save(&path, &config)
}

fn load(path: &Path) -> Result<Value> {
    let mut config = if path.exists() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            api_types::yaml::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?
        }
    } else {
        Value::Object(Map::new())
    };
    if !config.is_object() {
        bail!("{} is not a kubeconfig (not a mapping)", path.display());
    }
    for (key, default) in [
        ("apiVersion", Value::from("v1")),
        ("kind", Value::from("Config")),
        ("clusters", Value::Array(Vec::new())),
        ("contexts", Value::Array(Vec::new())),
        ("users", Value::Array(Vec::new())),
        ("current-context", Value::from("")),
        ("preferences", Value::Object(Map::new())),
    ] {
        if config.get(key).is_none_or(Value::is_null) {
            set(&mut config, key, default);
        }
    }
    Ok(config)
}

fn save(path: &PathBuf, config: &Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, api_types::yaml::to_string(config)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn set(config: &mut Value, key: &str, value: Value) {
    if let Some(map) = config.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn entries<'a>(config: &'a Value, list: &str) -> impl Iterator<Item = &'a Value> {
    config
        .get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn find<'a>(config: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    entries(config, list).find(|e| text(e, "name") == name)
}

/// Creates or updates `list[name].inner` with the given fields (a `None`
/// leaves a field as it is).
fn set_entry(
    config: &mut Value,
    list: &str,
    inner: &str,
    name: &str,
    fields: &[(&str, Option<Value>)],
) {
    let Some(sequence) = config.get_mut(list).and_then(Value::as_array_mut) else {
        return;
    };
    let index = match sequence.iter().position(|e| text(e, "name") == name) {
        Some(i) => i,
        None => {
            let mut entry = Map::new();
            entry.insert("name".to_string(), Value::from(name));
            entry.insert(inner.to_string(), Value::Object(Map::new()));
            sequence.push(Value::Object(entry));
            sequence.len() - 1
        }
    };
    let entry = &mut sequence[index];
    if !entry.get(inner).is_some_and(Value::is_object) {
        set(entry, inner, Value::Object(Map::new()));
    }
    if let Some(map) = entry.get_mut(inner).and_then(Value::as_object_mut) {
        for (key, value) in fields {
            if let Some(value) = value {
                map.insert((*key).to_string(), value.clone());
            }
        }
    }
}

fn redact(config: &mut Value) {
    if let Some(users) = config.get_mut("users").and_then(Value::as_array_mut) {
        for user in users {
            if let Some(map) = user.get_mut("user").and_then(Value::as_object_mut) {
                for key in [
                    "token",
                    "password",
                    "client-key-data",
                    "client-certificate-data",
                ] {
                    if let Some(value) = map.get_mut(key) {
                        *value = Value::from("REDACTED");
                    }
                }
            }
        }
    }
}

fn minified(config: &Value) -> Result<Value> {
    let current = text(config, "current-context");
    let Some(context) = find(config, "contexts", &current).cloned() else {
        bail!("current-context is not set");
    };
    let inner = context.get("context").cloned().unwrap_or_default();
    let mut out = config.clone();
    set(&mut out, "contexts", Value::Array(vec![context]));
    for (list, key) in [("clusters", "cluster"), ("users", "user")] {
        let keep: Vec<Value> = find(config, list, &text(&inner, key))
            .cloned()
            .into_iter()
            .collect();
        set(&mut out, list, Value::Array(keep));
    }
    Ok(out)
}
