//! Fuzzing on stable Rust: property-based (`proptest`) and mutational
//! targets for everything the apiserver parses from a client.
//!
//! `cargo-fuzz` needs a nightly toolchain and this project builds on
//! stable only, so each target here is a proptest property: inputs are
//! drawn from a structured generator *and* from byte-level mutations of
//! the seed corpus in `corpus/<target>/`, and the property is "answers
//! with a value or a typed error, never a panic, a 5xx or an unbounded
//! result". Every corpus file is also replayed as is on each run, so a
//! crash once found stays a regression case: save its input there.
//! proptest keeps the seed of each failure it finds in
//! `tests/proptest-regressions/<target>.txt`; commit those files too: they
//! are replayed before any new case. (Checked: a panic injected into the
//! label selector parser on `!=,` is found by the mutated-selectors target
//! within its 512 cases, shrunk to `"!=,"`, and its seed saved there.)
//!
//! The number of generated cases per target is `FUZZ_CASES` (default 512,
//! which keeps the whole binary to seconds in CI); raise it for a longer
//! hunt, e.g. `FUZZ_CASES=200000 cargo nextest run -p mini-k8s-tests
//! --test fuzz`.

mod api;
mod bodies;
mod corpus;
mod patches;
mod quantities;
mod selectors;
