//! The push planner: send a registry only what it lacks.
//!
//! For every blob of an image, first ask the target (HEAD). A blob it has is skipped; one
//! that lives in another repository of the same registry is mounted; one that lives in
//! another registry is streamed from there, verified on the way, without touching disk;
//! a local one is uploaded. Blobs go concurrently; then the manifest, then each tag, so
//! a tag never points at an incomplete image and a failed push can simply be run again.

use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::sync::Mutex;

use serde::Serialize;
use teu_oci::{Descriptor, Digest, RegistryRef};
use teu_registry::{Client, MountOutcome, RegistryError, Traffic};

use crate::image::{Artifact, BlobRef, Image};
use crate::ImageError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The target has it.
    Skip,
    /// Mounted from another repository of the target registry.
    Mount,
    /// Read from another registry and sent on.
    Stream,
    /// Sent from local bytes.
    Upload,
}

/// One blob's fate.
#[derive(Clone, Debug, Serialize)]
pub struct BlobPlan {
    pub digest: Digest,
    pub size: u64,
    pub action: Action,
    /// Where the bytes come from (`docker://host/repo`, `teu store …`).
    pub from: String,
    /// The repository of the target registry to mount from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_from: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub skipped: u64,
    pub mounted: u64,
    pub streamed: u64,
    pub uploaded: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PushReport {
    pub target: String,
    pub digest: Digest,
    pub tags: Vec<String>,
    pub dry_run: bool,
    pub blobs: Vec<BlobPlan>,
    /// Bytes of blobs, by what happened to them (planned, for a dry run).
    pub bytes: Totals,
    /// What went over the wire, requests and bytes, including retries.
    pub traffic: Traffic,
}

pub struct PushOptions {
    /// Blobs moved at the same time.
    pub jobs: usize,
    pub dry_run: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            jobs: 4,
            dry_run: false,
        }
    }
}

fn what_blob(d: &Descriptor, dst: &RegistryRef) -> String {
    format!("blob {} for {}/{}", d.digest, dst.registry, dst.repository)
}

/// Decide what each blob needs, asking the target about each (concurrently).
pub fn plan(
    client: &Client,
    dst: &RegistryRef,
    image: &Image,
    jobs: usize,
) -> Result<Vec<BlobPlan>, ImageError> {
    let mounts = client.quirks(&dst.registry).mounts;
    let mut seen = BTreeSet::new();
    let blobs: Vec<(&Descriptor, BlobRef)> = image
        .blobs()
        .into_iter()
        .filter(|(d, _)| seen.insert(d.digest.clone()))
        .collect();
    // A repository of the target registry the image's layers come from: a copy's config
    // is likely there too. Failing that, the base the image was built on (its base.name
    // annotation): pushed from a layout, its base layers are there to be mounted.
    let base_repo = image
        .manifest
        .value
        .annotations
        .get(crate::build::BASE_NAME)
        .and_then(|n| n.parse::<RegistryRef>().ok())
        .filter(|r| r.registry == dst.registry && r.repository != dst.repository)
        .map(|r| r.repository);
    let sibling = image
        .layers
        .iter()
        .filter_map(|l| l.source.registry_repository())
        .find(|(reg, repo)| *reg == dst.registry && *repo != dst.repository)
        .map(|(_, repo)| repo.to_string())
        .or(base_repo);
    let results = parallel(&blobs, jobs, |(d, blob)| -> Result<BlobPlan, ImageError> {
        let remote = match blob {
            BlobRef::Source(s) => s.registry_repository(),
            BlobRef::Bytes(_) => None,
        };
        let from = match blob {
            BlobRef::Source(s) => s.name(),
            BlobRef::Bytes(_) => "memory".to_string(),
        };
        let present = client.head_blob(&dst.registry, &dst.repository, &d.digest)?;
        let mut mount_from = None;
        let action = match (present, remote) {
            (Some(n), _) if n == d.size => Action::Skip,
            (_, Some((reg, repo))) if reg == dst.registry && repo != dst.repository && mounts => {
                mount_from = Some(repo.to_string());
                Action::Mount
            }
            (_, Some((reg, _))) if reg != dst.registry => Action::Stream,
            // Same repository but missing (a dangling base?): read it from there anyway.
            (_, Some(_)) => Action::Stream,
            (_, None) => match sibling.as_deref().filter(|_| mounts) {
                Some(repo) if client.head_blob(&dst.registry, repo, &d.digest)? == Some(d.size) => {
                    mount_from = Some(repo.to_string());
                    Action::Mount
                }
                _ => Action::Upload,
            },
        };
        Ok(BlobPlan {
            digest: d.digest.clone(),
            size: d.size,
            action,
            from: match &mount_from {
                Some(repo) => format!("docker://{}/{repo}", dst.registry),
                None => from,
            },
            mount_from,
        })
    });
    results.into_iter().collect()
}

/// Push `image` to `dst` and tag it with `dst`'s tag plus `extra_tags`.
pub fn push_image(
    client: &Client,
    dst: &RegistryRef,
    extra_tags: &[String],
    image: &Image,
    opts: &PushOptions,
) -> Result<PushReport, ImageError> {
    let before = client.traffic();
    let jobs = opts.jobs.max(1);
    let mut plans = plan(client, dst, image, jobs)?;
    let tags = tags_of(dst, extra_tags);
    if !opts.dry_run {
        let blobs = image.blobs();
        let by_digest = |d: &Digest| {
            blobs
                .iter()
                .find(|(desc, _)| &desc.digest == d)
                .expect("planned from these blobs")
        };
        let outcomes = parallel(&plans, jobs, |p| -> Result<Action, ImageError> {
            let (desc, blob) = by_digest(&p.digest);
            move_blob(client, dst, desc, blob, p)
        });
        for (p, o) in plans.iter_mut().zip(outcomes) {
            p.action = o?;
        }
        put_manifest(
            client,
            dst,
            &tags,
            image.manifest_media_type(),
            &image.manifest.bytes,
        )?;
    }
    let bytes = totals(&plans);
    let after = client.traffic();
    Ok(PushReport {
        target: dst.name(),
        digest: image.digest(),
        tags,
        dry_run: opts.dry_run,
        blobs: plans,
        bytes,
        traffic: traffic_between(&before, &after),
    })
}

/// Push an image, or an index and every image in it: each image by digest first, then the
/// index under the tags, so a tag never names something incomplete.
pub fn push_artifact(
    client: &Client,
    dst: &RegistryRef,
    extra_tags: &[String],
    artifact: &Artifact,
    opts: &PushOptions,
) -> Result<PushReport, ImageError> {
    let index = match artifact {
        Artifact::Image(image) => return push_image(client, dst, extra_tags, image, opts),
        Artifact::Index(x) => x,
    };
    let before = client.traffic();
    let mut blobs = Vec::new();

    for image in &index.images {
        let by_digest = RegistryRef {
            tag: None,
            digest: Some(image.digest()),
            ..dst.clone()
        };
        let r = push_image(client, &by_digest, &[], image, opts)?;
        for b in r.blobs {
            if !blobs.iter().any(|p: &BlobPlan| p.digest == b.digest) {
                blobs.push(b);
            }
        }
    }
    let bytes = totals(&blobs);
    let tags = tags_of(dst, extra_tags);
    if !opts.dry_run {
        put_manifest(
            client,
            dst,
            &tags,
            artifact.media_type(),
            artifact.root_bytes(),
        )?;
    }
    let after = client.traffic();
    Ok(PushReport {
        target: dst.name(),
        digest: artifact.digest(),
        tags,
        dry_run: opts.dry_run,
        blobs,
        bytes,
        traffic: traffic_between(&before, &after),
    })
}

/// Bytes of blobs, by what happened to them.
fn totals(plans: &[BlobPlan]) -> Totals {
    let mut bytes = Totals::default();
    for p in plans {
        *match p.action {
            Action::Skip => &mut bytes.skipped,
            Action::Mount => &mut bytes.mounted,
            Action::Stream => &mut bytes.streamed,
            Action::Upload => &mut bytes.uploaded,
        } += p.size;
    }
    bytes
}

/// What went over the wire between two readings of the client's counters.
fn traffic_between(before: &Traffic, after: &Traffic) -> Traffic {
    Traffic {
        requests: after.requests - before.requests,
        bytes_up: after.bytes_up - before.bytes_up,
        bytes_down: after.bytes_down - before.bytes_down,
        retries: after.retries - before.retries,
    }
}

/// The manifest by digest when no tag is wanted, else under each tag in turn.
pub fn put_manifest(
    client: &Client,
    dst: &RegistryRef,
    tags: &[String],
    media_type: &str,
    bytes: &[u8],
) -> Result<(), ImageError> {
    let digest = Digest::of(bytes);
    if let Some(want) = &dst.digest {
        if *want != digest {
            return Err(crate::invalid(
                format!("push to {dst}"),
                format!("the image's digest is {digest}, not the one the target names"),
            ));
        }
    }
    if tags.is_empty() {
        client.put_manifest(
            &dst.registry,
            &dst.repository,
            &digest.to_string(),
            media_type,
            bytes,
        )?;
    }
    for t in tags {
        client.put_manifest(&dst.registry, &dst.repository, t, media_type, bytes)?;
    }
    Ok(())
}

/// `dst`'s tag (`latest` when it names neither tag nor digest) and the extra tags.
pub fn tags_of(dst: &RegistryRef, extra: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for t in dst
        .tag_or_latest()
        .map(str::to_string)
        .into_iter()
        .chain(extra.iter().cloned())
    {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    tags
}

fn move_blob(
    client: &Client,
    dst: &RegistryRef,
    desc: &Descriptor,
    blob: &BlobRef,
    plan: &BlobPlan,
) -> Result<Action, ImageError> {
    let mut session = None;
    match plan.action {
        Action::Skip => return Ok(Action::Skip),
        Action::Mount => {
            let from = plan
                .mount_from
                .as_deref()
                .expect("planned mounts name a repository");
            match client.mount_blob(&dst.registry, &dst.repository, &desc.digest, from)? {
                MountOutcome::Mounted => return Ok(Action::Mount),
                MountOutcome::NotMounted { location } => session = location,
            }
        }
        Action::Stream | Action::Upload => {}
    }
    let what = what_blob(desc, dst);
    let open = || -> Result<Box<dyn Read + Send>, RegistryError> {
        match blob {
            BlobRef::Bytes(b) => Ok(Box::new(Cursor::new(b.to_vec()))),
            BlobRef::Source(s) => s.open(&desc.digest).map_err(|e| RegistryError::Invalid {
                what: format!("{what}: reading it from {}", s.name()),
                message: e.to_string(),
            }),
        }
    };
    client.upload_blob(
        &dst.registry,
        &dst.repository,
        &desc.digest,
        desc.size,
        &open,
        session,
    )?;
    Ok(match blob {
        BlobRef::Source(s) if s.registry_repository().is_some() => Action::Stream,
        _ => Action::Upload,
    })
}

/// Run `f` over `items` on up to `jobs` threads, results in input order.
fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().expect("queue");
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                results.lock().expect("results")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
