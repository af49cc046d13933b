//! `ctl create configmap|secret generic NAME`: objects built from literals,
//! files, directories and env files, as kubectl builds them.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::{emit, GlobalArgs};

/// Where the keys come from (kubectl's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Sources {
    /// The name of the object.
    pub name: String,
    /// `key=value`, repeatable.
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub literals: Vec<String>,
    /// `[key=]path`: a file (its name is the key) or a directory (each
    /// regular file in it), repeatable.
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    pub files: Vec<String>,
    /// A file of `KEY=VALUE` lines (`#` comments, blank lines skipped),
    /// repeatable.
    #[arg(long = "from-env-file", value_name = "PATH")]
    pub env_files: Vec<String>,
    /// Print the object instead of creating it (`client`, as kubectl's).
    #[arg(long = "dry-run", value_parser = ["none", "client"], default_value = "none")]
    pub dry_run: String,
}

/// `create secret` kinds.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SecretKind {
    /// A secret from literals, files and env files.
    Generic {
        /// Where the keys come from.
        #[command(flatten)]
        sources: Sources,
        /// The secret's type.
        #[arg(long = "type", default_value = "Opaque")]
        secret_type: String,
    },
}

/// The keys and their bytes, in the order kubectl reports clashes.
fn collect(sources: &Sources) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    let mut add = |key: &str, value: Vec<u8>, from: &str| -> Result<()> {
        let problems = api_types::validation::is_config_map_key(key);
        if let Some(problem) = problems.first() {
            bail!("{key:?} (from {from}) is not a valid key name: {problem}");
        }
        if data.insert(key.to_string(), value).is_some() {
            bail!("cannot add key {key:?} (from {from}): another key by that name already exists");
        }
        Ok(())
    };
    for literal in &sources.literals {
        let (key, value) = literal
            .split_once('=')
            .with_context(|| format!("--from-literal {literal:?}: expected KEY=VALUE"))?;
        add(key, value.as_bytes().to_vec(), "--from-literal")?;
    }
    for spec in &sources.files {
        let (key, path) = match spec.split_once('=') {
            Some((key, path)) => (Some(key), Path::new(path)),
            None => (None, Path::new(spec.as_str())),
        };
        if path.is_dir() {
            if key.is_some() {
                bail!("--from-file {spec:?}: a key cannot be given for a directory");
            }
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let name = entry.file_name().to_string_lossy().into_owned();
                let bytes = std::fs::read(entry.path())
                    .with_context(|| format!("reading {}", entry.path().display()))?;
                add(&name, bytes, &entry.path().display().to_string())?;
            }
        } else {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = match key {
                Some(key) => key.to_string(),
                None => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .with_context(|| format!("--from-file {spec:?}: no file name"))?,
            };
            add(&name, bytes, &path.display().to_string())?;
        }
    }
    for file in &sources.env_files {
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let from = format!("{file}:{}", number + 1);
            match line.split_once('=') {
                Some((key, value)) => add(key, value.as_bytes().to_vec(), &from)?,
                // kubectl: a bare KEY takes its value from the environment.
                None => {
                    let value = std::env::var(line).unwrap_or_default();
                    add(line, value.into_bytes(), &from)?;
                }
            }
        }
    }
    Ok(data)
}

/// A ConfigMap: UTF-8 values in `data`, others in `binaryData`.
fn config_map(sources: &Sources) -> Result<Value> {
    let mut data = serde_json::Map::new();
    let mut binary = serde_json::Map::new();
    for (key, bytes) in collect(sources)? {
        match String::from_utf8(bytes) {
            Ok(text) => {
                data.insert(key, Value::String(text));
            }
            Err(e) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(e.into_bytes());
                binary.insert(key, Value::String(encoded));
            }
        }
    }
    let mut object = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": sources.name },
        "data": data,
    });
    if !binary.is_empty() {
        object["binaryData"] = Value::Object(binary);
    }
    Ok(object)
}

/// A Secret: every value base64 in `data`.
fn secret(sources: &Sources, secret_type: &str) -> Result<Value> {
    let data: serde_json::Map<String, Value> = collect(sources)?
        .into_iter()
        .map(|(k, v)| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(v);
            (k, Value::String(encoded))
        })
        .collect();
    Ok(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": sources.name },
        "type": secret_type,
        "data": data,
    }))
}

async fn create(
    global: &GlobalArgs,
    plural: &str,
    singular: &str,
    object: Value,
    dry_run: &str,
) -> Result<()> {
    if dry_run == "client" {
        emit(&format!("{}\n", serde_json::to_string_pretty(&object)?));
        return Ok(());
    }
    let ctl = global.connect().await?;
    let path = format!(
        "/api/v1/namespaces/{}/{plural}",
        crate::client::encode(&ctl.namespace)
    );
    let created = ctl
        .post(&path, &object)
        .await
        .with_context(|| format!("creating {singular}"))?;
    let name = created
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    emit(&format!("{singular}/{name} created\n"));
    Ok(())
}

/// Runs `create configmap`.
///
/// # Errors
///
/// An unreadable source, an invalid or repeated key, or the server's refusal.
pub async fn configmap(global: &GlobalArgs, sources: Sources) -> Result<()> {
    let object = config_map(&sources)?;
    create(global, "configmaps", "configmap", object, &sources.dry_run).await
}

/// Runs `create secret generic`.
///
/// # Errors
///
/// An unreadable source, an invalid or repeated key, or the server's refusal.
pub async fn secret_generic(global: &GlobalArgs, kind: SecretKind) -> Result<()> {
    let SecretKind::Generic {
        sources,
        secret_type,
    } = kind;
    let object = secret(&sources, &secret_type)?;
    create(global, "secrets", "secret", object, &sources.dry_run).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(literals: &[&str], files: &[&str], env_files: &[&str]) -> Sources {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_string()).collect();
        Sources {
            name: "n".into(),
            literals: owned(literals),
            files: owned(files),
            env_files: owned(env_files),
            dry_run: "none".into(),
        }
    }

    #[test]
    fn keys_come_from_literals_files_directories_and_env_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a.txt"), "A")?;
        std::fs::create_dir(dir.path().join("d"))?;
        std::fs::write(dir.path().join("d/x"), "X")?;
        std::fs::write(dir.path().join("d/bin"), [0xff, 0x00])?;
        std::fs::write(dir.path().join("e.env"), "# c\n\nK=v=w\n  L=1\n")?;
        let p = |s: &str| dir.path().join(s).display().to_string();
        let object = config_map(&sources(
            &["lit=eral"],
            &[&p("a.txt"), &format!("renamed={}", p("a.txt")), &p("d")],
            &[&p("e.env")],
        ))?;
        assert_eq!(
            object["data"],
            json!({"lit": "eral", "a.txt": "A", "renamed": "A", "x": "X", "K": "v=w", "L": "1"})
        );
        assert_eq!(object["binaryData"], json!({"bin": "/wA="}));
        let secret = secret(&sources(&["p=hunter2"], &[], &[]), "Opaque")?;
        assert_eq!(secret["data"], json!({"p": "aHVudGVyMg=="}));
        Ok(())
    }

    #[test]
    fn bad_and_repeated_keys_are_refused_saying_where_from() {
        let e = config_map(&sources(&["a/b=c"], &[], &[])).expect_err("bad key");
        assert!(
            format!("{e:#}").contains("is not a valid key name"),
            "{e:#}"
        );
        let e = config_map(&sources(&["k=1", "k=2"], &[], &[])).expect_err("repeated");
        assert!(
            format!("{e:#}").contains("another key by that name"),
            "{e:#}"
        );
        let e = config_map(&sources(&["novalue"], &[], &[])).expect_err("no =");
        assert!(format!("{e:#}").contains("expected KEY=VALUE"), "{e:#}");
    }
}
