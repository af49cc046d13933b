//! `ctl`: the kubectl-style command line.
fn main() {}
