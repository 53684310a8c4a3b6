//! The harness teu's test suites share: real servers on loopback, never mocks.
//!
//! - [`registry`]: the CNCF distribution registry (`docker-registry`) on a free port with
//!   private storage and the auth setups teu supports, and a recording, fault-injecting
//!   HTTP proxy to put in front of it (429, 5xx, resets, truncation, slowness).
//! - [`token_server`]: a bearer-token server for the registry's token auth.
//! - [`tool`]: the path of a real tool; a missing one fails the test (scripts/test
//!   installs them), so nothing is skipped silently.

use std::path::PathBuf;

pub mod registry;
pub mod token_server;

/// The path of a real tool. A missing tool fails the test: nothing is skipped silently.
#[track_caller]
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/test, which installs the tools the tests use");
}
