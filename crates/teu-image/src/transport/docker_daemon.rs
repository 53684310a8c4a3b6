//! `docker-daemon:NAME[:TAG]`: an image loaded into a Docker Engine through its API, on
//! `$DOCKER_HOST` (`unix://PATH`) or `/var/run/docker.sock`, moving only what it lacks.
//!
//! The plan asks the engine (over [`super::unix_http`]):
//!
//! 1. `GET /info`: an engine whose `DriverStatus` names `io.containerd.snapshotter.v1`
//!    keeps images in containerd (Docker 29's default on fresh installs). Such an engine
//!    is written through containerd's content store in the `moby` namespace instead
//!    ([`super::containerd`], at `--containerd-address`, `$CONTAINERD_ADDRESS` or
//!    `/run/containerd/containerd.sock`), so only missing blobs move and the digest is
//!    kept. Only the detection is tested here: Debian's docker.io 20.10 uses the classic
//!    store.
//! 2. `GET /images/sha256:<config>/json`: the classic store names an image by its config
//!    digest. If it has it, `POST /images/ID/tag` names it, and no blob moves.
//! 3. Otherwise: which of the image's layers it already holds. Docker does not list layers,
//!    but every image it has says its `RootFS.Layers` (diff IDs); the longest prefix of this
//!    image's diff IDs that some image there starts with is a chain Docker holds. The load
//!    stream leaves those layer files out: Docker's loader looks each layer up by chain ID
//!    before it opens the file.
//!
//! Then a docker archive (config, the missing layers, `manifest.json` with `RepoTags`) is
//! written straight into `POST /images/load` (chunked, never to disk), the JSON lines that
//! come back are read (a failed load still answers 200, with `errorDetail`), and the name
//! is checked to point at the config digest. The classic store drops the manifest digest
//! (`RepoDigests` stays empty): the report says so.
//!
//! As a source ([`DockerDaemonSource`], podman's too): `GET /images/NAME/get` (what
//! `docker save` reads) streamed into an unlinked temporary file, then read as a docker
//! archive. What comes back is what the engine keeps: Docker 20.10 saves the pre-OCI
//! format (uncompressed layers), so the image read has a new manifest digest, as with
//! skopeo's `docker-daemon:` source.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use teu_oci::{Digest, Platform, RegistryRef};

use super::containerd::ContainerdSink;
use super::unix_http::{query, Response, UnixHttp};
use super::{archive, Action, BlobPlan, Context, EngineReport, Sink, Source, Top};
use crate::error::ImageError;
use crate::image::{Artifact, Image};

/// Which engine speaks the Docker API on the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    Docker,
    /// podman's Docker-compatible service.
    Podman,
}

impl Flavor {
    fn engine(self) -> &'static str {
        match self {
            Flavor::Docker => "docker",
            Flavor::Podman => "podman",
        }
    }
}

/// Docker's socket: `$DOCKER_HOST` (`unix://PATH` only), else `/var/run/docker.sock`.
pub fn socket() -> Result<PathBuf, String> {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => unix_path(&h),
        _ => Ok(PathBuf::from("/var/run/docker.sock")),
    }
}

pub(crate) fn unix_path(host: &str) -> Result<PathBuf, String> {
    match host.strip_prefix("unix://") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Err(format!(
            "{host}: only unix:// sockets are supported (teu loads into a local engine)"
        )),
    }
}

/// Whether a Docker Engine answers on [`socket`] (`GET /_ping`).
pub fn ping() -> Result<(), String> {
    let path = socket()?;
    ping_at(&path)
}

pub(crate) fn ping_at(path: &Path) -> Result<(), String> {
    match UnixHttp::new(path).request("GET", "/_ping") {
        Ok(r) if r.ok() => Ok(()),
        Ok(r) => Err(format!(
            "unix://{}: /_ping answered {}",
            path.display(),
            r.status
        )),
        Err(e) => Err(format!("unix://{}: {e}", path.display())),
    }
}

/// What the plan found.
#[derive(Default)]
struct Planned {
    /// The image of the artifact the engine gets (one platform).
    image: usize,
    /// The engine has an image with this config: tag it.
    existing: bool,
    /// Layers the engine holds (left out of the stream).
    omit: HashSet<Digest>,
}

#[derive(Default)]
struct State {
    planned: Option<Planned>,
    via_containerd: Option<ContainerdSink>,
    report: Option<EngineReport>,
}

/// A Docker-API engine as a sink: Docker itself, or podman's compatible service
/// ([`super::podman`]).
pub struct DockerDaemonSink {
    flavor: Flavor,
    socket: Result<PathBuf, String>,
    name: RegistryRef,
    containerd_address: PathBuf,
    state: Mutex<State>,
}

impl DockerDaemonSink {
    pub fn new(name: &RegistryRef, cx: &Context) -> DockerDaemonSink {
        DockerDaemonSink {
            flavor: Flavor::Docker,
            socket: socket(),
            name: name.clone(),
            containerd_address: super::containerd::address(cx),
            state: Mutex::default(),
        }
    }

    pub(crate) fn with_flavor(
        flavor: Flavor,
        socket: Result<PathBuf, String>,
        name: &RegistryRef,
    ) -> DockerDaemonSink {
        DockerDaemonSink {
            flavor,
            socket,
            name: name.clone(),
            containerd_address: PathBuf::new(),
            state: Mutex::default(),
        }
    }

    fn err(&self, message: impl Into<String>) -> ImageError {
        ImageError::Engine {
            engine: format!("{} {}", self.flavor.engine(), self.address()),
            message: message.into(),
        }
    }

    fn address(&self) -> String {
        match &self.socket {
            Ok(p) => format!("unix://{}", p.display()),
            Err(e) => e.clone(),
        }
    }

    fn api(&self) -> Result<UnixHttp, ImageError> {
        match &self.socket {
            Ok(p) => Ok(UnixHttp::new(p)),
            Err(e) => Err(self.err(e.clone())),
        }
    }

    fn get(&self, path: &str) -> Result<Response, ImageError> {
        self.api()?.request("GET", path).map_err(|e| {
            self.err(format!(
                "GET {path}: {e} (is the engine running, and is this its socket?)"
            ))
        })
    }

    fn json(&self, path: &str) -> Result<Option<Value>, ImageError> {
        let r = self.get(path)?;
        match r.status {
            200 => serde_json::from_slice(&r.body)
                .map(Some)
                .map_err(|e| self.err(format!("GET {path}: not JSON: {e}"))),
            404 => Ok(None),
            s => Err(self.err(format!("GET {path}: HTTP {s}: {}", r.text()))),
        }
    }

    /// The name as the engine is asked for it: Docker's familiar form, podman's full one.
    fn engine_name(&self) -> String {
        match self.flavor {
            Flavor::Docker => self.name.familiar(),
            Flavor::Podman => self.name.qualified(),
        }
    }

    /// Whether Docker keeps images in containerd (`driver-type io.containerd.snapshotter.v1`).
    fn uses_containerd_store(&self) -> Result<bool, ImageError> {
        Ok(containerd_store(&self.json("/info")?.unwrap_or_default()))
    }

    /// The longest prefix of `diff_ids` that some image in the engine starts with.
    fn held_prefix(&self, diff_ids: &[Digest]) -> Result<usize, ImageError> {
        let mut candidates = vec![format!("/images/{}/json", query(&self.engine_name()))];
        if let Some(Value::Array(all)) = self.json("/images/json")? {
            candidates.extend(
                all.iter()
                    .filter_map(|i| i["Id"].as_str())
                    .take(200)
                    .map(|id| format!("/images/{id}/json")),
            );
        }
        let mut best = 0;
        for c in candidates {
            if best == diff_ids.len() {
                break;
            }
            let Some(img) = self.json(&c)? else { continue };
            let layers: Vec<&str> = img["RootFS"]["Layers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let n = diff_ids
                .iter()
                .zip(&layers)
                .take_while(|(a, b)| a.to_string() == **b)
                .count();
            best = best.max(n);
        }
        Ok(best)
    }

    fn load_stream(&self, image: &Image, omit: &HashSet<Digest>) -> Result<u64, ImageError> {
        let path = "/images/load?quiet=1";
        let (r, sent) = self.api()?.stream(
            "POST",
            path,
            "application/x-tar",
            &mut |w: &mut dyn Write| {
                match self.flavor {
                    Flavor::Docker => archive::write_engine_archive(w, &self.name, image, omit),
                    // podman reads the combined archive as OCI and names the image from
                    // index.json (Docker 25's annotations).
                    Flavor::Podman => archive::write_docker_archive(
                        w,
                        Some(&self.name),
                        &Artifact::Image(image.clone()),
                        omit,
                    ),
                }
                .map(|_| ())
            },
        )?;
        if !r.ok() {
            return Err(self.err(format!("POST {path}: HTTP {}: {}", r.status, r.text())));
        }
        match load_error(&r.body) {
            Some(detail) => Err(self.err(format!("load failed: {detail}"))),
            None => Ok(sent),
        }
    }
}

/// Whether `GET /info` describes an engine on the containerd image store: Docker 24+
/// reports `["driver-type", "io.containerd.snapshotter.v1"]` in `DriverStatus` then.
fn containerd_store(info: &Value) -> bool {
    info["DriverStatus"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .any(|kv| {
            kv.first().and_then(Value::as_str) == Some("driver-type")
                && kv
                    .get(1)
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("io.containerd.snapshotter"))
        })
}

/// The error in a load's answer: JSON messages one after another, and a failed load still
/// answers 200, so any message with `error` is the real answer.
fn load_error(body: &[u8]) -> Option<String> {
    for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        let Ok(v) = v else { break };
        if let Some(e) = v.get("error") {
            return Some(
                v["errorDetail"]["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.as_str().map_or_else(|| e.to_string(), str::to_string)),
            );
        }
    }
    None
}

impl Sink for DockerDaemonSink {
    fn name(&self) -> String {
        match self.flavor {
            Flavor::Docker => format!("docker-daemon:{}", self.name.familiar()),
            Flavor::Podman => format!("podman:{}", self.name.qualified()),
        }
    }
    fn is_local(&self) -> bool {
        true
    }
    fn tags(&self) -> Vec<String> {
        vec![self.engine_name()]
    }
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError> {
        let mut state = self.state.lock().expect("not poisoned");
        if self.flavor == Flavor::Docker && self.uses_containerd_store()? {
            let c = ContainerdSink::new(&self.containerd_address, "moby", &self.name);
            let plan = c.plan(artifact)?;
            state.via_containerd = Some(c);
            return Ok(plan);
        }
        let images = artifact.images();
        let image = crate::select::image_of(artifact, &Platform::host())?;
        let index = images
            .iter()
            .position(|i| std::ptr::eq(*i, image))
            .unwrap_or(0);
        let config = &image.manifest.value.config.digest;
        let existing = self
            .json(&format!("/images/sha256:{}/json", config.hex()))?
            .is_some();
        let diff_ids = &image.config.value.rootfs.diff_ids;
        let held = match existing {
            true => image.layers.len(),
            false => self.held_prefix(diff_ids)?,
        };
        let mut planned = Planned {
            image: index,
            existing,
            omit: HashSet::new(),
        };
        let from = |b: &crate::image::BlobRef| super::from_name(b);
        let mut plans = vec![BlobPlan {
            digest: config.clone(),
            size: image.manifest.value.config.size,
            action: if existing { Action::Skip } else { Action::Copy },
            from: "memory".to_string(),
            mount_from: None,
        }];
        for (i, l) in image.layers.iter().enumerate() {
            let skip = i < held && image.layers.len() == diff_ids.len();
            if skip {
                planned.omit.insert(l.descriptor.digest.clone());
            }
            plans.push(BlobPlan {
                digest: l.descriptor.digest.clone(),
                size: l.descriptor.size,
                action: if skip { Action::Skip } else { Action::Copy },
                from: from(&crate::image::BlobRef::Source(l.source.as_ref())),
                mount_from: None,
            });
        }
        state.planned = Some(planned);
        Ok(plans)
    }
    fn write(&self, artifact: &Artifact, plan: &mut [BlobPlan]) -> Result<u64, ImageError> {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(c) = &state.via_containerd {
            let n = c.write(artifact, plan)?;
            let mut report = c.engine();
            if let Some(r) = &mut report {
                r.engine = "docker (containerd image store)".to_string();
            }
            state.report = report;
            return Ok(n);
        }
        let planned = state
            .planned
            .take()
            .ok_or_else(|| self.err("write before plan"))?;
        let image = artifact.images()[planned.image];
        let config = &image.manifest.value.config.digest;
        let id = format!("sha256:{}", config.hex());
        let mut retried = None;
        let (sent, how) = if planned.existing {
            let repo = match self.flavor {
                Flavor::Docker => self
                    .name
                    .familiar()
                    .rsplit_once(':')
                    .map(|(r, _)| r.to_string())
                    .unwrap_or_else(|| self.name.name()),
                Flavor::Podman => self.name.name(),
            };
            let tag = self.name.tag_or_latest().unwrap_or("latest");
            let path = format!("/images/{id}/tag?repo={}&tag={}", query(&repo), query(tag));
            let r = self
                .api()?
                .request("POST", &path)
                .map_err(|e| self.err(format!("POST {path}: {e}")))?;
            if !r.ok() {
                return Err(self.err(format!("POST {path}: HTTP {}: {}", r.status, r.text())));
            }
            (0, "tagged")
        } else {
            match self.load_stream(image, &planned.omit) {
                Ok(n) => (n, "loaded"),
                // A layer the engine held at plan time may be gone by now (an `rmi` in
                // between), or podman may not find one it holds: send everything.
                Err(e) if !planned.omit.is_empty() => {
                    retried = Some(e.to_string());
                    for p in plan.iter_mut() {
                        p.action = Action::Copy;
                    }
                    (self.load_stream(image, &HashSet::new())?, "loaded")
                }
                Err(e) => return Err(e),
            }
        };
        // What the name points at now.
        let name = self.engine_name();
        let held = self
            .json(&format!("/images/{}/json", query(&name)))?
            .ok_or_else(|| self.err(format!("after the load, the engine has no image {name}")))?;
        if held["Id"].as_str() != Some(id.as_str()) {
            return Err(self.err(format!(
                "after the load, {name} is {} (expected {id})",
                held["Id"]
            )));
        }
        // The image's manifest, or the index it came from, if the engine kept either.
        let kept = [artifact.digest(), image.digest()].into_iter().find(|m| {
            held["RepoDigests"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .any(|d| d.ends_with(&format!("@{m}")))
        });
        let keeps = kept.is_some();
        let manifest = image.digest();
        let mut warnings = Vec::new();
        if !keeps {
            warnings.push(format!(
                "{} keeps the image as its config digest {id} (the image ID); the manifest digest {manifest} is not kept (RepoDigests is empty)",
                self.flavor.engine()
            ));
        }
        if let Some(e) = retried {
            warnings.push(format!(
                "the load without the layers {} holds failed ({e}); sent every layer",
                self.flavor.engine()
            ));
        }
        if artifact.images().len() > 1 {
            warnings.push(format!(
                "{} holds one platform: loaded {} of the index's {} images",
                self.flavor.engine(),
                image.config.value.platform(),
                artifact.images().len()
            ));
        }
        state.report = Some(EngineReport {
            engine: self.flavor.engine().to_string(),
            address: self.address(),
            name: self.name.qualified(),
            digest: kept.unwrap_or_else(|| config.clone()),
            keeps_manifest_digest: keeps,
            bytes_sent: sent,
            how: how.to_string(),
            warnings,
        });
        Ok(sent)
    }
    fn engine(&self) -> Option<EngineReport> {
        self.state.lock().expect("not poisoned").report.clone()
    }
}

/// `docker-daemon:NAME[:TAG]` (or podman's) as a source: the engine's own save stream.
pub struct DockerDaemonSource {
    sink: DockerDaemonSink,
}

impl DockerDaemonSource {
    pub fn new(name: &RegistryRef, cx: &Context) -> DockerDaemonSource {
        DockerDaemonSource {
            sink: DockerDaemonSink::new(name, cx),
        }
    }

    pub(crate) fn podman(name: &RegistryRef) -> DockerDaemonSource {
        DockerDaemonSource {
            sink: super::podman::podman_sink(name),
        }
    }
}

impl Source for DockerDaemonSource {
    fn name(&self) -> String {
        self.sink.name()
    }
    fn open(&self) -> Result<Top, ImageError> {
        let s = &self.sink;
        let name = s.engine_name();
        let path = format!("/images/{}/get", query(&name));
        let tmp = tempfile_in_tmp().map_err(|e| s.err(format!("a temporary file: {e}")))?;
        let mut file = std::io::BufWriter::new(
            tmp.0
                .try_clone()
                .map_err(|e| s.err(format!("a temporary file: {e}")))?,
        );
        let r = s
            .api()?
            .download(&path, &mut file)
            .map_err(|e| s.err(format!("GET {path}: {e}")))?;
        file.flush()
            .map_err(|e| s.err(format!("writing the saved image: {e}")))?;
        if !r.ok() {
            return Err(s.err(format!("GET {path}: HTTP {}: {}", r.status, r.text())));
        }
        // The archive source opens the file by path and keeps its descriptor; the file
        // is unlinked as soon as it is open.
        // One image was asked for, so the archive holds one (Docker names it in the
        // familiar form, podman in full).
        let top = archive::ArchiveSource::docker(&tmp.1, None).open();
        let _ = std::fs::remove_file(&tmp.1);
        top
    }
    fn tags(&self) -> Result<Vec<String>, ImageError> {
        let s = &self.sink;
        let name = s.engine_name();
        let img = s
            .json(&format!("/images/{}/json", query(&name)))?
            .ok_or_else(|| s.err(format!("has no image {name}")))?;
        Ok(img["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }
}

/// A new file under the temporary directory, open for writing and reading.
fn tempfile_in_tmp() -> std::io::Result<(std::fs::File, PathBuf)> {
    let dir = std::env::temp_dir();
    for i in 0..100u32 {
        let p = dir.join(format!(
            "teu-save-{}-{}-{i}.tar",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((f, p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary file name"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_containerd_image_store_is_recognized() {
        let c8d = serde_json::json!({"Driver": "overlayfs",
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]});
        // Docker 20.10 on vfs, as in the tests here.
        let classic = serde_json::json!({"Driver": "vfs", "DriverStatus": null});
        let overlay2 = serde_json::json!({"Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]]});
        assert!(super::containerd_store(&c8d));
        assert!(!super::containerd_store(&classic));
        assert!(!super::containerd_store(&overlay2));
    }

    #[test]
    fn a_failed_load_is_found_in_a_200_answer() {
        let ok = br#"{"stream":"Loaded image: app:1\n"}"#;
        assert_eq!(super::load_error(ok), None);
        let failed = br#"{"stream":"x"}
{"errorDetail":{"message":"open /var/lib/docker/tmp/x/layer.tar: no such file"},"error":"open ..."}"#;
        assert_eq!(
            super::load_error(failed).as_deref(),
            Some("open /var/lib/docker/tmp/x/layer.tar: no such file")
        );
        assert_eq!(
            super::load_error(br#"{"error":"bad"}"#).as_deref(),
            Some("bad")
        );
    }
}
