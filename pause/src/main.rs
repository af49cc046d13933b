//! The infra ("pause") container's PID 1: holds the pod's namespaces and
//! does nothing else. As PID 1 of a PID namespace it gets no default signal
//! actions, so it installs handlers: SIGTERM and SIGINT end it with status 0
//! at once, so deleting a pod never waits out a grace period for it.
//!
//! Built as a static binary (`-C target-feature=+crt-static`) by
//! `hack/build-images.sh`; it uses only libc's `signal`, `pause` and `_exit`.
#![allow(unsafe_code)] // three libc calls; there is no safe std API for signal handlers

use std::os::raw::c_int;

const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

extern "C" {
    fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
    fn pause() -> c_int;
    fn _exit(status: c_int) -> !;
}

extern "C" fn on_signal(_signum: c_int) {
    // SAFETY: `_exit` is async-signal-safe.
    unsafe { _exit(0) }
}

fn main() {
    // SAFETY: installing a handler that only calls an async-signal-safe
    // function; `pause` merely blocks until a signal arrives.
    unsafe {
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        loop {
            pause();
        }
    }
}
