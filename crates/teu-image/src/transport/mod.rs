//! Every image reference read and written the same way.
//!
//! A reference's transport is decided here and nowhere else: [`open_source`] turns it into
//! a [`Source`] (what the reference names, and where its blobs are), [`open_sink`] into a
//! [`Sink`] (a destination that first plans, asking what it lacks and moving nothing, then
//! writes all or nothing). Each transport is one module implementing both:
//!
//! | transport | module | source | sink |
//! | --- | --- | --- | --- |
//! | `oci:DIR[:TAG]` | [`layout`] | index.json, blobs read in place | skip, link from the store, copy |
//! | `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]` | [`archive`] | the tar indexed once, blobs read in place | one tar, written under a temporary name |
//! | `HOST/REPO[:TAG\|@DIGEST]`, `docker://…` | [`registry`] | manifests, blobs streamed on demand | the push planner: skip, mount, stream, upload |
//! | `docker-daemon:NAME[:TAG]` | [`docker_daemon`] | the engine's save stream (`GET /images/NAME/get`) in an unlinked temporary file, read as a docker archive | tag an image it has; else stream a docker archive of only the layers it lacks into `POST /images/load` |
//! | `podman:NAME[:TAG]`, `containers-storage:…` | [`podman`] | the same, from podman's service | podman's Docker-compatible service: tag an image it has, else stream the archive without the layers it holds |
//! | `containerd:[NAMESPACE/]NAME[:TAG]` | [`containerd`] | `Images.Get`, blobs streamed with `Content.Read` | the content API under a lease: only blobs it lacks, then the image record |
//!
//! Adding a transport means adding a module and one arm in each of the two functions.
//!
//! ```no_run
//! use teu_image::transport::{self, Context, Select, WriteOptions};
//! # fn main() -> Result<(), teu_image::ImageError> {
//! let cx = Context::default();
//! let src = "oci:./out:v1".parse().unwrap();
//! let dst = "oci-archive:out.tar".parse().unwrap();
//! let image = transport::read(&src, &Select::All, &cx)?;   // every platform of an index
//! let report = transport::write(&image, &dst, &WriteOptions::default(), &cx)?;
//! println!("{} blobs, {} bytes written", report.blobs.len(), report.bytes_written);
//! # Ok(()) }
//! ```

pub mod archive;
pub mod containerd;
pub mod docker_daemon;
pub mod layout;
pub mod podman;
pub mod registry;
mod unix_http;

use std::sync::Arc;

use serde::Serialize;
use teu_oci::{Descriptor, Digest, Reference};
use teu_registry::{Client, Traffic};
use teu_store::Store;

use crate::blob::BlobSource;
use crate::error::{unsupported, ImageError};
use crate::image::{Artifact, BlobRef};
pub use crate::select::Select;

/// What a transport may need from the command: a registry client for registry
/// references, and teu's store, whose outputs' blobs a local sink pins against gc.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub registry: Option<Client>,
    pub store: Option<Store>,
    /// containerd's socket (`--containerd-address`); else `$CONTAINERD_ADDRESS`, else
    /// `/run/containerd/containerd.sock`.
    pub containerd_address: Option<std::path::PathBuf>,
}

impl Context {
    fn client(&self, what: &str) -> Result<&Client, ImageError> {
        self.registry
            .as_ref()
            .ok_or_else(|| unsupported(what, "no registry client was configured"))
    }
}

/// The top document a reference names (an index or a manifest) and where it and every
/// blob below it can be read.
#[derive(Clone, Debug)]
pub struct Top {
    pub blobs: Arc<dyn BlobSource>,
    pub descriptor: Descriptor,
}

/// Where images are read from.
pub trait Source: Send + Sync {
    /// The reference, for messages.
    fn name(&self) -> String;
    /// Find what the reference names now (one request or one small file read).
    fn open(&self) -> Result<Top, ImageError>;
    /// The tags this source holds (a registry repository's, a layout's `ref.name`s).
    fn tags(&self) -> Result<Vec<String>, ImageError>;
    /// Whether what the reference names can change under it (a registry tag can move;
    /// a digest, a layout path or an archive cannot be moved by someone else's push).
    fn is_pinned(&self) -> bool {
        true
    }
    /// The image's own name (`docker.io/library/app:1`), for an engine that loads it: a
    /// registry reference's, else a tag that is a full name (`io.containerd.image.name`
    /// or a `ref.name` holding one).
    fn image_name(&self) -> Result<Option<teu_oci::RegistryRef>, ImageError> {
        Ok(self
            .tags()?
            .iter()
            .filter(|t| t.contains([':', '/']))
            .find_map(|t| t.parse::<teu_oci::RegistryRef>().ok()))
    }
    /// The name to record in an image built on this one (`org.opencontainers.image.base.name`):
    /// only registry references have one that means the same on every machine.
    fn base_name(&self) -> Option<String> {
        None
    }
}

/// What a sink does with one blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The destination has it.
    Skip,
    /// Hard-linked from teu's store (no bytes copied).
    Link,
    /// Copied from where it is, verified on the way.
    Copy,
    /// Mounted from another repository of the target registry.
    Mount,
    /// Read from another registry and sent on.
    Stream,
    /// Sent to a registry from local bytes.
    Upload,
}

impl Action {
    /// Whether the action moves the blob's bytes (as opposed to naming bytes already there).
    pub fn moves_bytes(self) -> bool {
        matches!(self, Action::Copy | Action::Stream | Action::Upload)
    }
}

/// One blob's fate.
#[derive(Clone, Debug, Serialize)]
pub struct BlobPlan {
    pub digest: Digest,
    pub size: u64,
    pub action: Action,
    /// Where the bytes come from (`docker://host/repo`, `teu store …`, `oci:base`).
    pub from: String,
    /// The repository of the target registry to mount from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_from: Option<String>,
}

/// Bytes of blobs, by what happened to them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub skipped: u64,
    pub linked: u64,
    pub copied: u64,
    pub mounted: u64,
    pub streamed: u64,
    pub uploaded: u64,
}

impl Totals {
    pub fn of(plans: &[BlobPlan]) -> Totals {
        let mut t = Totals::default();
        for p in plans {
            *match p.action {
                Action::Skip => &mut t.skipped,
                Action::Link => &mut t.linked,
                Action::Copy => &mut t.copied,
                Action::Mount => &mut t.mounted,
                Action::Stream => &mut t.streamed,
                Action::Upload => &mut t.uploaded,
            } += p.size;
        }
        t
    }
}

/// How a write is to be done.
#[derive(Clone, Debug)]
pub struct WriteOptions {
    /// Extra tags for the image (registry destinations only); the reference's own tag
    /// always applies.
    pub tags: Vec<String>,
    /// Plan only: ask the destination, move nothing.
    pub dry_run: bool,
    /// Blobs moved at the same time.
    pub jobs: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            tags: Vec::new(),
            dry_run: false,
            jobs: 4,
        }
    }
}

/// What a write did (or, for a dry run, would do).
#[derive(Clone, Debug, Serialize)]
pub struct WriteReport {
    pub destination: String,
    /// Whether the destination is on this machine (a file or directory), not a registry.
    pub local: bool,
    pub digest: Digest,
    /// The names the image has there now (tags; the layout's or archive's ref name).
    pub tags: Vec<String>,
    pub dry_run: bool,
    pub blobs: Vec<BlobPlan>,
    /// Bytes of blobs, by what happened to them (planned, for a dry run).
    pub bytes: Totals,
    /// Bytes written to the destination's storage (files) or sent (registries).
    pub bytes_written: u64,
    /// What went over the wire to registries, requests and bytes, including retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
    /// What a container engine holds now (engine destinations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineReport>,
}

/// What a container engine holds after a load.
#[derive(Clone, Debug, Serialize)]
pub struct EngineReport {
    /// `docker`, `podman` or `containerd`.
    pub engine: String,
    /// The socket spoken to.
    pub address: String,
    /// The name the image has there (`docker.io/library/app:1`).
    pub name: String,
    /// The digest the engine knows the image by: the manifest or index digest where it
    /// keeps it (containerd), else the image ID (the config digest).
    pub digest: Digest,
    /// Whether `digest` is the image's manifest or index digest.
    pub keeps_manifest_digest: bool,
    /// Bytes sent to the engine (archive stream or content writes).
    pub bytes_sent: u64,
    /// `tagged` (the engine had the image), `loaded` or `written`.
    pub how: String,
    pub warnings: Vec<String>,
}

/// Where images are written.
pub trait Sink: Send + Sync {
    /// The destination, for messages and reports.
    fn name(&self) -> String;
    /// Whether the destination is on this machine (a file or directory).
    fn is_local(&self) -> bool;
    /// The names the image gets there.
    fn tags(&self) -> Vec<String>;
    /// For each layer and config: what the destination needs done. Asks, moves nothing.
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError>;
    /// Carry out `plan` (updating each action to what really happened), then write the
    /// documents and names; all or nothing. Returns the bytes written.
    fn write(&self, artifact: &Artifact, plan: &mut [BlobPlan]) -> Result<u64, ImageError>;
    /// After `write`: what a container engine holds now (engines only).
    fn engine(&self) -> Option<EngineReport> {
        None
    }
}

/// The one place a reference is read: its transport's [`Source`].
pub fn open_source(r: &Reference, cx: &Context) -> Result<Box<dyn Source>, ImageError> {
    Ok(match r {
        Reference::Layout { path, tag } => Box::new(layout::LayoutSource::new(path, tag.clone())),
        Reference::OciArchive { path, tag } => {
            Box::new(archive::ArchiveSource::oci(path, tag.clone()))
        }
        Reference::DockerArchive { path, name } => Box::new(archive::ArchiveSource::docker(
            path,
            name.as_ref().map(|n| n.familiar()),
        )),
        Reference::Registry(reg) => Box::new(registry::RegistrySource::new(
            cx.client(&r.to_string())?,
            reg,
        )),
        Reference::DockerDaemon(name) => Box::new(docker_daemon::DockerDaemonSource::new(name, cx)),
        Reference::Podman(name) => Box::new(docker_daemon::DockerDaemonSource::podman(name)),
        Reference::Containerd { namespace, name } => Box::new(containerd::ContainerdSource::new(
            &containerd::address(cx),
            namespace,
            name,
        )),
        Reference::Scratch => {
            return Err(unsupported(
                "scratch",
                "scratch is an empty base, not an image to read",
            ))
        }
    })
}

/// The one place a reference is written: its transport's [`Sink`].
pub fn open_sink(
    r: &Reference,
    opts: &WriteOptions,
    cx: &Context,
) -> Result<Box<dyn Sink>, ImageError> {
    let no_tags = |what: &str| -> Result<(), ImageError> {
        match opts.tags.is_empty() {
            true => Ok(()),
            false => Err(unsupported(
                r.to_string(),
                format!("extra tags apply to registry destinations; name the tag in the reference ({what})"),
            )),
        }
    };
    Ok(match r {
        Reference::Layout { path, tag } => {
            no_tags("oci:DIR:TAG")?;
            Box::new(layout::LayoutSink::new(path, tag.clone(), cx.store.clone()))
        }
        Reference::OciArchive { path, tag } => {
            no_tags("oci-archive:FILE:TAG")?;
            Box::new(archive::ArchiveSink::oci(
                path,
                tag.clone(),
                cx.store.clone(),
            ))
        }
        Reference::DockerArchive { path, name } => {
            no_tags("docker-archive:FILE:NAME:TAG")?;
            Box::new(archive::ArchiveSink::docker(
                path,
                name.clone(),
                cx.store.clone(),
            ))
        }
        Reference::Registry(reg) => Box::new(registry::RegistrySink::new(
            cx.client(&r.to_string())?,
            reg,
            &opts.tags,
            opts.jobs,
        )),
        Reference::DockerDaemon(name) => {
            no_tags("docker-daemon:NAME:TAG")?;
            Box::new(docker_daemon::DockerDaemonSink::new(name, cx))
        }
        Reference::Podman(name) => {
            no_tags("podman:NAME:TAG")?;
            Box::new(podman::podman_sink(name))
        }
        Reference::Containerd { namespace, name } => {
            no_tags("containerd:NAME:TAG")?;
            Box::new(containerd::ContainerdSink::new(
                &containerd::address(cx),
                namespace,
                name,
            ))
        }
        Reference::Scratch => {
            return Err(unsupported(
                "scratch",
                "scratch is a base, not a destination",
            ))
        }
    })
}

/// Read what `r` names: the whole index or image, or one platform's image.
pub fn read(r: &Reference, select: &Select, cx: &Context) -> Result<Artifact, ImageError> {
    let top = open_source(r, cx)?.open()?;
    crate::select::select(top.blobs, &top.descriptor, select)
}

/// Write `artifact` to `r`: plan, then (unless a dry run) write.
pub fn write(
    artifact: &Artifact,
    r: &Reference,
    opts: &WriteOptions,
    cx: &Context,
) -> Result<WriteReport, ImageError> {
    write_to(open_sink(r, opts, cx)?.as_ref(), artifact, opts.dry_run, cx)
}

/// Write `artifact` to an opened sink: plan, then (unless `dry_run`) write.
pub fn write_to(
    sink: &dyn Sink,
    artifact: &Artifact,
    dry_run: bool,
    cx: &Context,
) -> Result<WriteReport, ImageError> {
    let before = cx.registry.as_ref().map(Client::traffic);
    let mut blobs = sink.plan(artifact)?;
    let bytes_written = if dry_run {
        0
    } else {
        sink.write(artifact, &mut blobs)?
    };
    // Registry traffic, whether the registry is the destination or a source blobs came from.
    let traffic = match (&cx.registry, before) {
        (Some(c), Some(b)) => Some(c.traffic().since(&b)).filter(|t| t.requests > 0),
        _ => None,
    };
    Ok(WriteReport {
        destination: sink.name(),
        local: sink.is_local(),
        digest: artifact.digest(),
        tags: sink.tags(),
        dry_run,
        bytes: Totals::of(&blobs),
        blobs,
        bytes_written,
        traffic,
        engine: if dry_run { None } else { sink.engine() },
    })
}

/// An engine that answers on its usual socket, asked in this order: Docker
/// (`$DOCKER_HOST`, `/var/run/docker.sock`), podman (`$CONTAINER_HOST`, podman's root and
/// rootless sockets), containerd ([`containerd::address`]). The error names every socket
/// tried and what each said.
pub fn engine_on_default_socket(cx: &Context) -> Result<teu_oci::Transport, ImageError> {
    let mut tried = Vec::new();
    match docker_daemon::ping() {
        Ok(()) => return Ok(teu_oci::Transport::DockerDaemon),
        Err(e) => tried.push(format!("docker: {e}")),
    }
    match podman::ping() {
        Ok(()) => return Ok(teu_oci::Transport::Podman),
        Err(e) => tried.push(format!("podman: {e}")),
    }
    match containerd::ping(&containerd::address(cx)) {
        Ok(()) => return Ok(teu_oci::Transport::Containerd),
        Err(e) => tried.push(format!("containerd: {e}")),
    }
    Err(ImageError::Engine {
        engine: "no engine".to_string(),
        message: format!(
            "none answered; tried {} (name one: docker-daemon:NAME, podman:NAME, containerd:NAME)",
            tried.join("; ")
        ),
    })
}

/// Where a blob's bytes come from, for plans.
pub(crate) fn from_name(blob: &BlobRef) -> String {
    match blob {
        BlobRef::Source(s) => s.name(),
        BlobRef::Bytes(_) => "memory".to_string(),
    }
}
