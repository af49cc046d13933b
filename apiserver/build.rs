//! Compiles Kubernetes' `generated.proto` files (in `proto/`) into one
//! `FileDescriptorSet` that the protobuf codec loads at run time.
//!
//! `protox` is a protobuf compiler in Rust, so this needs no `protoc` and
//! no well-known `.proto` files on the build machine.
//!
//! It also links the release binary with the code it runs while idle first
//! (hack/code-layout/README.md).

use std::path::PathBuf;

use prost::Message;

#[path = "../hack/code-layout/link_order.rs"]
mod link_order;

const FILES: [&str; 7] = [
    "k8s.io/api/core/v1/generated.proto",
    "k8s.io/api/coordination/v1/generated.proto",
    "k8s.io/api/policy/v1/generated.proto",
    "k8s.io/api/autoscaling/v1/generated.proto",
    "k8s.io/api/rbac/v1/generated.proto",
    "k8s.io/api/authorization/v1/generated.proto",
    "k8s.io/api/networking/v1/generated.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    link_order::link_in_idle_order("apiserver");
    let set = protox::compile(FILES, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("kubernetes.fds");
    std::fs::write(out, set.encode_to_vec())?;
    Ok(())
}
