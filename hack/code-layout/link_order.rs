//! Included by the build script of each long-running component
//! (`#[path]`): links a release build's code with the functions the
//! component runs while idle first, from `hack/code-layout/<binary>.order`
//! (see the README there).

use std::path::PathBuf;
use std::process::Command;

/// Asks the linker to lay out `binary`'s code in the order of its
/// `.order` file. Only for optimized builds (the files list release
/// symbols) linked by LLVM's lld (rustc's default linker on
/// x86_64-unknown-linux-gnu since 1.90), the linker whose
/// `--symbol-ordering-file` this is; anywhere else it does nothing. A name
/// the file lists that the binary lacks (code changed since the file was
/// made) is skipped without a warning: the layout only gets less tight.
pub fn link_in_idle_order(binary: &str) {
    let Ok(manifest) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = PathBuf::from(manifest)
        .join("../hack/code-layout")
        .join(format!("{binary}.order"));
    println!("cargo:rerun-if-changed={}", order.display());
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_by_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu")
        && rustc_minor_version().is_some_and(|minor| minor >= 90);
    if !release || !lld_by_default || !order.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

/// The `1.N` of the compiler cargo builds with (`$RUSTC -V`).
fn rustc_minor_version() -> Option<u32> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("-V").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = text.split_whitespace().nth(1)?;
    version.split('.').nth(1)?.parse().ok()
}
