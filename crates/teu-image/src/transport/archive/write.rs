//! `oci-archive` and `docker-archive` outputs: tar files written in one pass under a
//! temporary name and renamed when complete, blobs streamed from wherever they are and
//! verified on the way.
//!
//! Both archives are deterministic: entries in path order, owner 0:0, mtime 0, mode 0644
//! (directories 0755), the same header encoder as layers.
//!
//! A docker archive is an OCI layout plus Docker's `manifest.json` and `repositories`, as
//! `docker save` writes since Docker 25: `docker load` and `podman load` read the Docker
//! files, and OCI tools can read the layout. Layers stay compressed; `docker load`
//! decompresses them itself.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use teu_layer::tar_writer;
use teu_oci::{layout_blob_path, Descriptor, Index, Raw, RegistryRef, ANNOTATION_REF_NAME};
use teu_store::atomic::AtomicFile;
use teu_store::Store;

use crate::blob::copy_verified;
use crate::error::{io_err, ImageError};
use crate::image::{Artifact, BlobRef, Image};
use crate::transport::layout::{DEFAULT_TAG, OCI_LAYOUT_CONTENT};
use crate::transport::{from_name, Action, BlobPlan, Sink};

enum Kind {
    Oci { tag: String },
    Docker { name: Option<RegistryRef> },
}

/// `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME:TAG]` as a sink: an archive
/// always holds every blob, so every blob is copied.
pub struct ArchiveSink {
    path: PathBuf,
    kind: Kind,
    store: Option<Store>,
}

impl ArchiveSink {
    pub fn oci(path: &Path, tag: Option<String>, store: Option<Store>) -> ArchiveSink {
        ArchiveSink {
            path: path.to_path_buf(),
            kind: Kind::Oci {
                tag: tag.unwrap_or_else(|| DEFAULT_TAG.to_string()),
            },
            store,
        }
    }

    pub fn docker(path: &Path, name: Option<RegistryRef>, store: Option<Store>) -> ArchiveSink {
        ArchiveSink {
            path: path.to_path_buf(),
            kind: Kind::Docker { name },
            store,
        }
    }
}

impl Sink for ArchiveSink {
    fn name(&self) -> String {
        match &self.kind {
            Kind::Oci { tag } => format!("oci-archive:{}:{tag}", self.path.display()),
            Kind::Docker { name: Some(n) } => {
                format!("docker-archive:{}:{}", self.path.display(), n.familiar())
            }
            Kind::Docker { name: None } => format!("docker-archive:{}", self.path.display()),
        }
    }
    fn is_local(&self) -> bool {
        true
    }
    fn tags(&self) -> Vec<String> {
        match &self.kind {
            Kind::Oci { tag } => vec![tag.clone()],
            Kind::Docker { name } => name.iter().map(RegistryRef::familiar).collect(),
        }
    }
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError> {
        Ok(artifact
            .content_blobs()
            .into_iter()
            .map(|(d, b)| BlobPlan {
                digest: d.digest.clone(),
                size: d.size,
                action: Action::Copy,
                from: from_name(&b),
                mount_from: None,
            })
            .collect())
    }
    fn write(&self, artifact: &Artifact, _plan: &mut [BlobPlan]) -> Result<u64, ImageError> {
        let path = &self.path;
        let mut f = AtomicFile::create(path).map_err(io_err(path.display()))?;
        let n = {
            let mut w = BufWriter::with_capacity(1 << 20, &mut f);
            let n = match &self.kind {
                Kind::Oci { tag } => write_oci_archive(&mut w, Some(tag), artifact)?,
                Kind::Docker { name } => write_docker_archive(&mut w, name.as_ref(), artifact)?,
            };
            w.into_inner()
                .map_err(|e| io_err(path.display())(e.into_error()))?;
            n
        };
        f.commit().map_err(io_err(path.display()))?;
        if let Some(store) = &self.store {
            crate::gc::record_root(store, path, &self.name(), artifact)?;
        }
        Ok(n)
    }
}

struct TarOut<'a> {
    out: &'a mut dyn Write,
    written: u64,
}

impl TarOut<'_> {
    fn raw(&mut self, bytes: &[u8]) -> Result<(), ImageError> {
        self.out.write_all(bytes).map_err(io_err("archive"))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn dir(&mut self, name: &str) -> Result<(), ImageError> {
        self.raw(&tar_writer::dir_header(name.as_bytes(), 0o755, 0))
    }

    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<(), ImageError> {
        self.raw(&tar_writer::file_header(
            name.as_bytes(),
            bytes.len() as u64,
            0o644,
            0,
        ))?;
        self.raw(bytes)?;
        self.pad(bytes.len() as u64)
    }

    fn blob(&mut self, desc: &Descriptor, blob: &BlobRef) -> Result<(), ImageError> {
        let name = layout_blob_path(&desc.digest);
        self.raw(&tar_writer::file_header(
            name.as_bytes(),
            desc.size,
            0o644,
            0,
        ))?;
        let n = copy_verified(blob, desc, &mut *self.out)?;
        self.written += n;
        self.pad(n)
    }

    fn pad(&mut self, len: u64) -> Result<(), ImageError> {
        let zeros = [0u8; tar_writer::BLOCK];
        self.raw(&zeros[..tar_writer::padding(len)])
    }

    fn finish(mut self) -> Result<u64, ImageError> {
        self.raw(&tar_writer::trailer())?;
        Ok(self.written)
    }
}

/// Every blob of `artifact`, sorted by digest (archive entries are in path order).
fn all_blobs(artifact: &Artifact) -> Vec<(Descriptor, BlobRef<'_>)> {
    let mut v = artifact.blobs();
    v.sort_by(|a, b| a.0.digest.cmp(&b.0.digest));
    v
}

fn index_for(artifact: &Artifact, tag: Option<&str>) -> Raw<Index> {
    let mut index = Index::new();
    let mut d = artifact.descriptor();
    if let Some(t) = tag {
        d.annotations
            .insert(ANNOTATION_REF_NAME.to_string(), t.to_string());
    }
    index.manifests.push(d);
    Raw::encode(index)
}

/// Write an OCI archive (a tar of an OCI layout) of `image`, tagged `tag`.
fn write_oci_archive(
    out: &mut dyn Write,
    tag: Option<&str>,
    artifact: &Artifact,
) -> Result<u64, ImageError> {
    let mut t = TarOut { out, written: 0 };
    t.dir("blobs")?;
    t.dir("blobs/sha256")?;
    for (d, b) in all_blobs(artifact) {
        t.blob(&d, &b)?;
    }
    t.file("index.json", &index_for(artifact, tag).bytes)?;
    t.file("oci-layout", OCI_LAYOUT_CONTENT)?;
    t.finish()
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Write a `docker save` archive of `image`, named `name` (for `RepoTags`) when given.
/// The OCI part holds every platform; Docker's `manifest.json` names one image (a daemon
/// loads one platform): the index's first, so the archive does not depend on the host.
fn write_docker_archive(
    out: &mut dyn Write,
    name: Option<&RegistryRef>,
    artifact: &Artifact,
) -> Result<u64, ImageError> {
    let image: &Image = artifact.images()[0];
    let familiar = name.map(|n| n.familiar());
    let blob_path = |d: &Descriptor| layout_blob_path(&d.digest);
    let manifest = vec![DockerManifestEntry {
        config: blob_path(&image.manifest.value.config),
        repo_tags: familiar.iter().cloned().collect(),
        layers: image.manifest.value.layers.iter().map(blob_path).collect(),
    }];
    let manifest_json = serde_json::to_vec(&manifest).expect("serializable");

    let mut t = TarOut { out, written: 0 };
    t.dir("blobs")?;
    t.dir("blobs/sha256")?;
    for (d, b) in all_blobs(artifact) {
        t.blob(&d, &b)?;
    }
    t.file(
        "index.json",
        &index_for(artifact, familiar.as_deref()).bytes,
    )?;
    t.file("manifest.json", &manifest_json)?;
    t.file("oci-layout", OCI_LAYOUT_CONTENT)?;
    if let (Some(n), Some(top)) = (name, image.manifest.value.layers.last()) {
        // Legacy loaders map repository and tag to the top layer's id.
        let repo = familiar
            .as_deref()
            .and_then(|f| f.rsplit_once(':').map(|(r, _)| r.to_string()))
            .unwrap_or_else(|| n.name());
        let tag = n.tag_or_latest().unwrap_or("latest");
        let repositories = serde_json::json!({ repo: { tag: top.digest.hex() } });
        t.file(
            "repositories",
            &serde_json::to_vec(&repositories).expect("serializable"),
        )?;
    }
    t.finish()
}
