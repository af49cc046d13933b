//! Kubeconfig files for tests: the same file serves kubectl, the `kube`
//! crate and `ctl`.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// Writes `dir/kubeconfig` pointing at `server`, with an optional bearer
/// token and CA certificate file, and returns its path.
pub fn write(dir: &Path, server: &str, token: Option<&str>, ca: Option<&Path>) -> Result<PathBuf> {
    let path = dir.join("kubeconfig");
    let mut cluster = format!("    server: {server}\n");
    if let Some(ca) = ca {
        cluster.push_str(&format!("    certificate-authority: {}\n", ca.display()));
    }
    let user = match token {
        Some(token) => format!("    token: {token}\n"),
        None => "    {}\n".to_string(),
    };
    let user = if token.is_some() {
        format!("  user:\n{user}")
    } else {
        "  user: {}\n".to_string()
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n{cluster}users:\n- name: test\n{user}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\ncurrent-context: test\n"
    );
    std::fs::write(&path, text)?;
    Ok(path)
}
