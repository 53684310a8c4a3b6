//! teu-serve's integration tests: one binary, real components only (the server as a child
//! process, SeaweedFS, skopeo, containerd). See harness.rs for how each is started.

mod clients;
mod conformance;
mod harness;
mod ops;
mod proxy;
mod proxy_clients;
