//! Reading images out of `oci-archive` and `docker-archive` files without unpacking them:
//! the tar is indexed once (name -> offset and size) and blobs are read in place.
//!
//! A docker archive that carries an OCI layout (Docker 25+ and teu write one) is read as
//! OCI. An older one (`manifest.json` with `<id>/layer.tar` files) gets a Docker manifest
//! made for it, as skopeo does: each layer is hashed once to learn its digest.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use teu_layer::entry::RangeReader;

use serde::Deserialize;
use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Raw, Sha256Writer};

use crate::blob::BlobSource;
use crate::image::{Artifact, Image, Layer};
use crate::{invalid, io_err, layout, resolve, ImageError};

/// Where each file of an uncompressed tar is.
#[derive(Debug)]
struct TarIndex {
    file: File,
    path: PathBuf,
    entries: HashMap<String, (u64, u64)>,
}

impl TarIndex {
    fn open(path: &Path) -> Result<TarIndex, ImageError> {
        let file = File::open(path).map_err(io_err(path.display()))?;
        let mut magic = [0u8; 4];
        let n = file
            .read_at(&mut magic, 0)
            .map_err(io_err(path.display()))?;
        if n >= 2 && (magic[..2] == [0x1f, 0x8b] || magic == [0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(invalid(
                path.display().to_string(),
                "is compressed; image archives are plain tar files (decompress it first)",
            ));
        }
        let mut entries = HashMap::new();
        let mut ar = tar::Archive::new(&file);
        let bad = |e: io::Error| {
            invalid(
                path.display().to_string(),
                format!("is not a valid tar archive: {e}"),
            )
        };
        for e in ar.entries().map_err(bad)? {
            let e = e.map_err(bad)?;
            if e.header().entry_type().is_file() {
                let name = String::from_utf8_lossy(&e.path_bytes())
                    .trim_start_matches("./")
                    .to_string();
                entries.insert(name, (e.raw_file_position(), e.size()));
            }
        }
        Ok(TarIndex {
            file,
            path: path.to_path_buf(),
            entries,
        })
    }

    fn reader(&self, name: &str) -> Option<RangeReader<&File>> {
        self.entries
            .get(name)
            .map(|&(offset, size)| RangeReader::new(&self.file, offset, size))
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let what = format!("{} in {}", name, self.path.display());
        let (_, size) = *self
            .entries
            .get(name)
            .ok_or_else(|| invalid(self.path.display().to_string(), format!("has no {name}")))?;
        if size > 16 * 1024 * 1024 {
            return Err(invalid(what, "is too large for a JSON document"));
        }
        let mut buf = Vec::new();
        self.reader(name)
            .expect("present")
            .read_to_end(&mut buf)
            .map_err(io_err(&what))?;
        Ok(buf)
    }
}

/// Blobs inside an archive, found by digest.
#[derive(Debug)]
pub struct ArchiveSource {
    index: TarIndex,
    /// Digest -> entry name, for archives whose layers are not stored by digest.
    names: HashMap<Digest, String>,
    transport: &'static str,
}

impl BlobSource for ArchiveSource {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let name = self
            .names
            .get(digest)
            .cloned()
            .unwrap_or_else(|| format!("blobs/sha256/{}", digest.hex()));
        let (offset, size) = *self
            .index
            .entries
            .get(&name)
            .ok_or_else(|| invalid(self.name(), format!("has no blob {digest} ({name})")))?;
        let file = self
            .index
            .file
            .try_clone()
            .map_err(io_err(self.index.path.display()))?;
        Ok(Box::new(RangeReader::new(file, offset, size)))
    }
    fn name(&self) -> String {
        format!("{}:{}", self.transport, self.index.path.display())
    }
}

/// The image or index tagged `tag` (or the only one) in an OCI archive.
pub fn read_oci_archive(path: &Path, tag: Option<&str>) -> Result<Artifact, ImageError> {
    read_oci_in(TarIndex::open(path)?, tag, "oci-archive")
}

fn read_oci_in(
    index: TarIndex,
    tag: Option<&str>,
    transport: &'static str,
) -> Result<Artifact, ImageError> {
    let path = index.path.clone();
    let what = format!("index.json in {}", path.display());
    let top: Raw<Index> = Raw::parse(index.read_small("index.json")?, &what)
        .map_err(|e| invalid(&what, e.source.to_string()))?;
    let desc = layout::pick_tag(&top.value, tag, &path)?.clone();
    let source: Arc<dyn BlobSource> = Arc::new(ArchiveSource {
        index,
        names: HashMap::new(),
        transport,
    });
    resolve::artifact(source, &desc)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The image in a docker archive (the one named `name`, or the first).
pub fn read_docker_archive(path: &Path, name: Option<&str>) -> Result<Artifact, ImageError> {
    let index = TarIndex::open(path)?;
    if index.entries.contains_key("index.json") && index.entries.contains_key("oci-layout") {
        if let Ok(a) = read_oci_in(TarIndex::open(path)?, name, "docker-archive") {
            return Ok(a);
        }
    }
    let what = format!("manifest.json in {}", path.display());
    let entries: Vec<DockerManifestEntry> =
        serde_json::from_slice(&index.read_small("manifest.json")?)
            .map_err(|e| invalid(&what, e.to_string()))?;
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == n))
            .ok_or_else(|| invalid(&what, format!("names no image {n:?}")))?,
        None => entries
            .first()
            .ok_or_else(|| invalid(&what, "lists no image"))?,
    };
    let config_bytes = index.read_small(&entry.config)?;
    let cfg_what = format!("{} in {}", entry.config, path.display());
    let config: Raw<ImageConfig> = Raw::parse(config_bytes, &cfg_what)
        .map_err(|e| invalid(&cfg_what, e.source.to_string()))?;
    if config.value.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(invalid(
            cfg_what,
            "rootfs.diff_ids and manifest.json's Layers differ in length",
        ));
    }
    let mut names = HashMap::new();
    let mut descriptors = Vec::new();
    for l in &entry.layers {
        let mut r = index
            .reader(l)
            .ok_or_else(|| invalid(path.display().to_string(), format!("has no layer file {l}")))?;
        let mut head = [0u8; 4];
        let n = r.read(&mut head).map_err(io_err(l))?;
        let mut h = Sha256Writer::new(io::sink());
        h.update(&head[..n]);
        io::copy(&mut r, &mut h).map_err(io_err(l))?;
        let (digest, size, _) = h.finish();
        let mt = match &head[..n] {
            [0x1f, 0x8b, ..] => media_type::DOCKER_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => media_type::OCI_LAYER_ZSTD,
            _ => "application/vnd.docker.image.rootfs.diff.tar",
        };
        names.insert(digest.clone(), l.clone());
        descriptors.push(Descriptor::new(mt, digest, size));
    }
    names.insert(config.digest(), entry.config.clone());
    let manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::DOCKER_MANIFEST.to_string()),
        artifact_type: None,
        config: config.descriptor(media_type::DOCKER_CONFIG),
        layers: descriptors.clone(),
        subject: None,
        annotations: Default::default(),
    });
    let source: Arc<dyn BlobSource> = Arc::new(ArchiveSource {
        index,
        names,
        transport: "docker-archive",
    });
    let layers = descriptors
        .into_iter()
        .zip(config.value.rootfs.diff_ids.clone())
        .map(|(descriptor, diff_id)| Layer {
            descriptor,
            diff_id,
            source: Arc::clone(&source),
        })
        .collect();
    Ok(Artifact::Image(Image {
        manifest,
        config,
        layers,
    }))
}
