//! `podman:NAME[:TAG]` (skopeo's `containers-storage:NAME[:TAG]` too): an image loaded
//! into podman through its service's Docker-compatible API, never by writing
//! containers-storage's files (whose locking and layout are podman's business).
//!
//! The socket is `$CONTAINER_HOST` (`unix://PATH`, podman's own variable), else the
//! rootful `/run/podman/podman.sock`, else the rootless `$XDG_RUNTIME_DIR/podman/podman.sock`
//! (`systemctl [--user] start podman.socket`, or `podman system service --time=0`).
//!
//! Plan: `GET /images/sha256:<config>/json`: podman's image ID is the config digest, so an
//! image it has is only tagged and no blob moves. Otherwise the layers it holds are found
//! as for Docker (the longest prefix of the diff IDs that an image there starts with), and
//! the docker archive (OCI layout plus `manifest.json`) without those layer blobs is
//! streamed into `POST /images/load`. podman reads it as an OCI archive, names the image
//! from `index.json`'s `io.containerd.image.name`, and reuses a layer it holds without
//! opening the missing blob: by its compressed digest, and also by diff ID when it holds
//! the layer uncompressed (both seen with podman 4.3, in the tests). Should a load without
//! the held layers fail all the same, teu sends the whole archive again, with a warning
//! (no podman here fails so: that fallback is untested).

use std::path::PathBuf;

use teu_oci::RegistryRef;

use super::docker_daemon::{ping_at, unix_path, DockerDaemonSink, Flavor};

/// podman's service socket, by the rules above (the first that exists among the
/// defaults, so the error names the rootful one when neither does).
pub fn socket() -> Result<PathBuf, String> {
    if let Ok(h) = std::env::var("CONTAINER_HOST") {
        if !h.is_empty() {
            return unix_path(&h);
        }
    }
    let rootful = PathBuf::from("/run/podman/podman.sock");
    let rootless =
        std::env::var_os("XDG_RUNTIME_DIR").map(|d| PathBuf::from(d).join("podman/podman.sock"));
    match rootless {
        Some(p) if !rootful.exists() && p.exists() => Ok(p),
        _ => Ok(rootful),
    }
}

/// Whether podman's service answers on [`socket`].
pub fn ping() -> Result<(), String> {
    ping_at(&socket()?)
}

/// The sink for `podman:NAME`.
pub fn podman_sink(name: &RegistryRef) -> DockerDaemonSink {
    DockerDaemonSink::with_flavor(Flavor::Podman, socket(), name)
}
