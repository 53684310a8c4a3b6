//! teu's integration tests, one binary (as uv's `tests/it`): every module drives the
//! `teu` binary against real tools and servers (the CNCF registry, skopeo, umoci,
//! buildah), started by the tests on loopback with private state. `common` holds the
//! shared harness.

mod build_cli;
mod cache;
mod cache_kinds;
mod common;
mod daemons;
mod diff_verify;
mod edge_cases;
mod errors;
mod estargz;
mod hostile;
mod lock;
mod memory;
mod multi_platform;
mod progress;
mod real_tools;
mod registry;
mod registry_platforms;
mod reproducible;
mod serve;
mod transports;
