//! The push planner: send a registry only what it lacks.
//!
//! For every layer and config, first ask the target (HEAD). A blob it has is skipped; one
//! that lives in another repository of the same registry is mounted; one that lives in
//! another registry is streamed from there, verified on the way, without touching disk;
//! a local one is uploaded. Blobs go concurrently; then every manifest (and nested index)
//! by digest, then the top document under each tag, so a tag never points at something
//! incomplete and a failed push can simply be run again.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use teu_oci::{Descriptor, Digest, RegistryRef, ANNOTATION_BASE_NAME};
use teu_registry::{Client, MountOutcome, RegistryError};

use crate::error::{malformed, ImageError};
use crate::image::{Artifact, BlobRef};
use crate::parallel::map_in_order;
use crate::transport::{from_name, Action, BlobPlan, Sink};

/// `HOST/REPO[:TAG|@DIGEST]` as a sink.
pub struct RegistrySink {
    client: Client,
    dst: RegistryRef,
    tags: Vec<String>,
    jobs: usize,
}

impl RegistrySink {
    pub fn new(client: &Client, dst: &RegistryRef, extra_tags: &[String], jobs: usize) -> Self {
        RegistrySink {
            client: client.clone(),
            dst: dst.clone(),
            tags: tags_of(dst, extra_tags),
            jobs: jobs.max(1),
        }
    }

    /// A repository of the target registry the artifact's blobs are likely in too: one its
    /// layers come from (a copy's config is there as well), failing that the base an
    /// image was built on (its base.name annotation): pushed from a layout, its base
    /// layers are there to be mounted.
    fn sibling(&self, artifact: &Artifact) -> Option<String> {
        let dst = &self.dst;
        let images = artifact.images();
        let from_layers = images
            .iter()
            .flat_map(|i| &i.layers)
            .filter_map(|l| l.source.registry_repository())
            .find(|(reg, repo)| *reg == dst.registry && *repo != dst.repository)
            .map(|(_, repo)| repo.to_string());
        from_layers.or_else(|| {
            images.iter().find_map(|i| {
                i.manifest
                    .value
                    .annotations
                    .get(ANNOTATION_BASE_NAME)
                    .and_then(|n| n.parse::<RegistryRef>().ok())
                    .filter(|r| r.registry == dst.registry && r.repository != dst.repository)
                    .map(|r| r.repository)
            })
        })
    }

    fn plan_blob(
        &self,
        d: &Descriptor,
        blob: &BlobRef,
        sibling: Option<&str>,
        mounts: bool,
    ) -> Result<BlobPlan, ImageError> {
        let dst = &self.dst;
        let remote = match blob {
            BlobRef::Source(s) => s.registry_repository(),
            BlobRef::Bytes(_) => None,
        };
        let present = self
            .client
            .head_blob(&dst.registry, &dst.repository, &d.digest)?;
        let mut mount_from = None;
        let action = match (present, remote) {
            (Some(n), _) if n == d.size => Action::Skip,
            (_, Some((reg, repo))) if reg == dst.registry && repo != dst.repository && mounts => {
                mount_from = Some(repo.to_string());
                Action::Mount
            }
            // In another registry, or (a dangling base?) this very repository: read it
            // from there anyway.
            (_, Some(_)) => Action::Stream,
            (_, None) => match sibling.filter(|_| mounts) {
                Some(repo)
                    if self.client.head_blob(&dst.registry, repo, &d.digest)? == Some(d.size) =>
                {
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
                None => from_name(blob),
            },
            mount_from,
        })
    }

    fn move_blob(
        &self,
        desc: &Descriptor,
        blob: &BlobRef,
        plan: &BlobPlan,
    ) -> Result<Action, ImageError> {
        let dst = &self.dst;
        let mut session = None;
        match plan.action {
            Action::Skip => return Ok(Action::Skip),
            Action::Mount => {
                let from = plan
                    .mount_from
                    .as_deref()
                    .expect("planned mounts name a repository");
                match self
                    .client
                    .mount_blob(&dst.registry, &dst.repository, &desc.digest, from)?
                {
                    MountOutcome::Mounted => return Ok(Action::Mount),
                    MountOutcome::NotMounted { location } => session = location,
                }
            }
            _ => {}
        }
        let what = format!(
            "blob {} for {}/{}",
            desc.digest, dst.registry, dst.repository
        );
        let open = || -> Result<Box<dyn Read + Send>, RegistryError> {
            match blob {
                BlobRef::Bytes(b) => Ok(Box::new(Cursor::new(b.to_vec()))),
                BlobRef::Source(s) => s.open(&desc.digest).map_err(|e| RegistryError::Source {
                    what: format!("{what}: reading it from {}", s.name()),
                    source: Box::new(e),
                }),
            }
        };
        self.client.upload_blob(
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

    /// The top document by digest when no tag is wanted, else under each tag in turn.
    fn put_top(&self, media_type: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let (dst, client) = (&self.dst, &self.client);
        let digest = Digest::of(bytes);
        if let Some(want) = &dst.digest {
            if *want != digest {
                return Err(malformed(
                    format!("push to {dst}"),
                    format!("the image's digest is {digest}, not the one the target names"),
                ));
            }
        }
        if self.tags.is_empty() {
            client.put_manifest(
                &dst.registry,
                &dst.repository,
                &digest.to_string(),
                media_type,
                bytes,
            )?;
        }
        for t in &self.tags {
            client.put_manifest(&dst.registry, &dst.repository, t, media_type, bytes)?;
        }
        Ok(())
    }
}

impl Sink for RegistrySink {
    fn name(&self) -> String {
        self.dst.name()
    }
    fn is_local(&self) -> bool {
        false
    }
    fn tags(&self) -> Vec<String> {
        self.tags.clone()
    }
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError> {
        let mounts = self.client.quirks(&self.dst.registry).mounts;
        let sibling = self.sibling(artifact);
        let blobs = artifact.content_blobs();
        map_in_order(&blobs, self.jobs, |(d, blob)| {
            self.plan_blob(d, blob, sibling.as_deref(), mounts)
        })
        .into_iter()
        .collect()
    }
    fn write(&self, artifact: &Artifact, plan: &mut [BlobPlan]) -> Result<u64, ImageError> {
        let blobs: BTreeMap<Digest, (Descriptor, BlobRef)> = artifact
            .content_blobs()
            .into_iter()
            .map(|(d, b)| (d.digest.clone(), (d, b)))
            .collect();
        let outcomes = map_in_order(plan, self.jobs, |p| {
            let (desc, blob) = &blobs[&p.digest];
            self.move_blob(desc, blob, p)
        });
        let mut sent = 0;
        for (p, o) in plan.iter_mut().zip(outcomes) {
            p.action = o?;
            if p.action.moves_bytes() {
                sent += p.size;
            }
        }
        let (dst, client) = (&self.dst, &self.client);
        for (d, bytes) in artifact.child_documents() {
            client.put_manifest(
                &dst.registry,
                &dst.repository,
                &d.digest.to_string(),
                &d.media_type,
                bytes,
            )?;
            sent += bytes.len() as u64;
        }
        self.put_top(artifact.media_type(), artifact.root_bytes())?;
        Ok(sent + artifact.root_bytes().len() as u64)
    }
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
