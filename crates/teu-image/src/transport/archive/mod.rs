//! `oci-archive:` and `docker-archive:` files, as a source ([`ArchiveSource`]: the tar is
//! indexed once, name to offset and size, and blobs are read in place) and as a sink
//! ([`ArchiveSink`], in [`write`]).
//!
//! A docker archive that carries an OCI layout (Docker 25+ and teu write one) is read as
//! OCI. An older one (`manifest.json` with `<id>/layer.tar` files) gets a Docker manifest
//! made for it, as skopeo does: each layer is hashed once to learn its digest.

mod write;

pub use write::ArchiveSink;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use teu_layer::entry::RangeReader;
use teu_oci::{
    layout_blob_path, media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Raw,
    Sha256Writer,
};
use teu_store::lock::open_regular;

use super::layout::{pick_tag, tags_of};
use super::{Source, Top};
use crate::blob::BlobSource;
use crate::error::{io_err, malformed, not_found, unsupported, ImageError};

/// Where each file of an uncompressed tar is.
#[derive(Debug)]
struct TarIndex {
    file: File,
    path: PathBuf,
    entries: HashMap<String, (u64, u64)>,
    /// Members that are not regular files (symlinks, directories, …), by kind, so a
    /// message can say what a name is instead of that it is missing.
    others: HashMap<String, &'static str>,
}

/// Text from a file teu did not write, made safe for a terminal: control characters and
/// invalid UTF-8 are escaped, so a random-bytes archive never prints raw binary.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn kind_of(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Directory => "a directory",
        tar::EntryType::Symlink => "a symlink",
        tar::EntryType::Link => "a hard link",
        tar::EntryType::Fifo => "a fifo",
        tar::EntryType::Char | tar::EntryType::Block => "a device",
        _ => "not a regular file",
    }
}

impl TarIndex {
    fn open(path: &Path) -> Result<TarIndex, ImageError> {
        let file = open_regular(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => not_found(path.display().to_string(), "does not exist"),
            _ => io_err(path.display())(e),
        })?;
        let mut magic = [0u8; 4];
        let n = file
            .read_at(&mut magic, 0)
            .map_err(io_err(path.display()))?;
        if n >= 2 && (magic[..2] == [0x1f, 0x8b] || magic == [0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(unsupported(
                path.display().to_string(),
                "is compressed; image archives are plain tar files (decompress it first)",
            ));
        }
        let mut entries = HashMap::new();
        let mut others = HashMap::new();
        let mut ar = tar::Archive::new(&file);
        let bad = |e: io::Error| {
            malformed(
                path.display().to_string(),
                format!("is not a valid tar archive: {}", printable(&e.to_string())),
            )
        };
        for e in ar.entries().map_err(bad)? {
            let e = e.map_err(bad)?;
            let name = String::from_utf8_lossy(&e.path_bytes())
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            let kind = e.header().entry_type();
            if kind.is_file() {
                entries.insert(name, (e.raw_file_position(), e.size()));
            } else {
                others.insert(name, kind_of(kind));
            }
        }
        Ok(TarIndex {
            file,
            path: path.to_path_buf(),
            entries,
            others,
        })
    }

    /// Why `name` cannot be read as a file: missing, or some other kind of member.
    fn lacks(&self, name: &str) -> String {
        match self.others.get(name) {
            Some(kind) => format!("has {name}, but it is {kind}, not a file"),
            None => format!("has no {name}"),
        }
    }

    /// Check every `blobs/sha256/<hex>` file against its name, before anything is read
    /// from the archive or reported about it: an archive is input teu did not write.
    fn verify_blobs(&self, source_name: &str) -> Result<(), ImageError> {
        let mut names: Vec<&String> = self
            .entries
            .keys()
            .filter(|n| n.starts_with("blobs/sha256/"))
            .collect();
        names.sort();
        for name in names {
            let Ok(digest) = format!("sha256:{}", &name["blobs/sha256/".len()..]).parse::<Digest>()
            else {
                continue;
            };
            let mut h = Sha256Writer::new(io::sink());
            io::copy(&mut self.reader(name).expect("listed"), &mut h)
                .map_err(io_err(format!("{name} in {}", self.path.display())))?;
            let (actual, size, _) = h.finish();
            if actual != digest {
                return Err(ImageError::Corrupt {
                    digest,
                    actual,
                    size,
                    expected_size: size,
                    source_name: source_name.to_string(),
                });
            }
        }
        Ok(())
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
            .ok_or_else(|| not_found(self.path.display().to_string(), self.lacks(name)))?;
        if size > 16 * 1024 * 1024 {
            return Err(unsupported(what, "is too large for a JSON document"));
        }
        let mut buf = Vec::new();
        self.reader(name)
            .expect("present")
            .read_to_end(&mut buf)
            .map_err(io_err(&what))?;
        Ok(buf)
    }

    fn read_index(&self) -> Result<Raw<Index>, ImageError> {
        let what = format!("index.json in {}", self.path.display());
        crate::select::parse(self.read_small("index.json")?, &what)
    }

    fn has_oci_layout(&self) -> bool {
        self.entries.contains_key("index.json") && self.entries.contains_key("oci-layout")
    }
}

/// Blobs inside an archive, found by digest.
#[derive(Debug)]
pub struct ArchiveBlobs {
    index: TarIndex,
    /// Digest -> entry name, for archives whose layers are not stored by digest.
    names: HashMap<Digest, String>,
    /// Documents made for a pre-OCI docker archive (its manifest), served from memory.
    made: HashMap<Digest, Vec<u8>>,
    transport: &'static str,
}

impl BlobSource for ArchiveBlobs {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if let Some(bytes) = self.made.get(digest) {
            return Ok(Box::new(Cursor::new(bytes.clone())));
        }
        let name = self
            .names
            .get(digest)
            .cloned()
            .unwrap_or_else(|| layout_blob_path(digest));
        let (offset, size) = *self.index.entries.get(&name).ok_or_else(|| {
            not_found(
                self.name(),
                format!("{} (blob {digest})", self.index.lacks(&name)),
            )
        })?;
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

#[derive(Clone, Copy)]
enum Kind {
    Oci,
    Docker,
}

/// `oci-archive:FILE[:TAG]` or `docker-archive:FILE[:NAME:TAG]` as a source.
pub struct ArchiveSource {
    path: PathBuf,
    /// The tag (OCI) or familiar `NAME:TAG` (docker) to read; the only image when `None`.
    name: Option<String>,
    kind: Kind,
}

impl ArchiveSource {
    pub fn oci(path: &Path, tag: Option<String>) -> ArchiveSource {
        ArchiveSource {
            path: path.to_path_buf(),
            name: tag,
            kind: Kind::Oci,
        }
    }

    pub fn docker(path: &Path, name: Option<String>) -> ArchiveSource {
        ArchiveSource {
            path: path.to_path_buf(),
            name,
            kind: Kind::Docker,
        }
    }

    fn transport(&self) -> &'static str {
        match self.kind {
            Kind::Oci => "oci-archive",
            Kind::Docker => "docker-archive",
        }
    }

    fn oci_top(&self, index: TarIndex) -> Result<Top, ImageError> {
        let layout_file = format!("oci-layout in {}", self.path.display());
        super::layout::check_layout_version(&index.read_small("oci-layout")?, &layout_file)?;
        let top = index.read_index()?;
        if top.value.schema_version != 2 {
            return Err(unsupported(
                format!("index.json in {}", self.path.display()),
                format!(
                    "schemaVersion is {}; an OCI layout's index.json has schemaVersion 2",
                    top.value.schema_version
                ),
            ));
        }
        index.verify_blobs(&format!("{}:{}", self.transport(), self.path.display()))?;
        let descriptor = pick_tag(&top.value, self.name.as_deref(), &self.path)?.clone();
        Ok(Top {
            blobs: Arc::new(ArchiveBlobs {
                index,
                names: HashMap::new(),
                made: HashMap::new(),
                transport: self.transport(),
            }),
            descriptor,
        })
    }
}

impl Source for ArchiveSource {
    fn name(&self) -> String {
        match &self.name {
            Some(n) => format!("{}:{}:{n}", self.transport(), self.path.display()),
            None => format!("{}:{}", self.transport(), self.path.display()),
        }
    }
    fn open(&self) -> Result<Top, ImageError> {
        let index = TarIndex::open(&self.path)?;
        match self.kind {
            Kind::Oci => self.oci_top(index),
            Kind::Docker if index.has_oci_layout() => {
                match self.oci_top(TarIndex::open(&self.path)?) {
                    Ok(top) => Ok(top),
                    Err(_) => docker_top(index, self.name.as_deref()),
                }
            }
            Kind::Docker => docker_top(index, self.name.as_deref()),
        }
    }
    fn tags(&self) -> Result<Vec<String>, ImageError> {
        let index = TarIndex::open(&self.path)?;
        match self.kind {
            Kind::Docker if index.entries.contains_key("manifest.json") => {
                Ok(docker_entries(&index)?
                    .into_iter()
                    .flat_map(|e| e.repo_tags.unwrap_or_default())
                    .collect())
            }
            _ => Ok(tags_of(&index.read_index()?.value)),
        }
    }
}

/// The digest a Docker archive member is named by (`<hex>.json`, `<hex>/layer.tar`,
/// `blobs/sha256/<hex>`), if its name carries one.
fn hex_in_name(name: &str) -> Option<Digest> {
    name.split(['/', '.'])
        .find(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|hex| format!("sha256:{hex}").parse().ok())
}

/// The digest and size of a layer as stored, and the digest of its uncompressed tar
/// (its diff_id), in one read.
fn hash_layer(head: &[u8], rest: &mut dyn Read, mt: &str) -> io::Result<(Digest, u64, Digest)> {
    struct Tee<'a> {
        inner: &'a mut dyn Read,
        hash: &'a mut Sha256Writer<io::Sink>,
    }
    impl Read for Tee<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.hash.update(&buf[..n]);
            Ok(n)
        }
    }
    let mut stored = Sha256Writer::new(io::sink());
    let mut tee = Tee {
        inner: &mut io::Read::chain(head, rest),
        hash: &mut stored,
    };
    let mut plain = Sha256Writer::new(io::sink());
    match mt {
        media_type::DOCKER_LAYER_GZIP => {
            io::copy(&mut flate2::read::MultiGzDecoder::new(&mut tee), &mut plain)?;
        }
        media_type::OCI_LAYER_ZSTD => {
            io::copy(&mut zstd::stream::read::Decoder::new(&mut tee)?, &mut plain)?;
        }
        _ => {
            io::copy(&mut tee, &mut plain)?;
        }
    }
    // Whatever the decompressor did not need still belongs to the stored blob.
    io::copy(&mut tee, &mut io::sink())?;
    let (digest, size, _) = stored.finish();
    let (diff_id, _, _) = plain.finish();
    Ok((digest, size, diff_id))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn docker_entries(index: &TarIndex) -> Result<Vec<DockerManifestEntry>, ImageError> {
    let what = format!("manifest.json in {}", index.path.display());
    serde_json::from_slice(&index.read_small("manifest.json")?)
        .map_err(|e| malformed(&what, e.to_string()))
}

/// The image in a pre-OCI docker archive (the one named `name`, or the first), with a
/// Docker manifest made for it.
fn docker_top(index: TarIndex, name: Option<&str>) -> Result<Top, ImageError> {
    let path = index.path.clone();
    let what = format!("manifest.json in {}", path.display());
    let entries = docker_entries(&index)?;
    let entry = match name {
        Some(n) => entries
            .iter()
            .find(|e| e.repo_tags.iter().flatten().any(|t| t == n))
            .ok_or_else(|| not_found(&what, format!("names no image {n:?}")))?,
        None => entries
            .first()
            .ok_or_else(|| not_found(&what, "lists no image"))?,
    };
    let config_bytes = index.read_small(&entry.config)?;
    let cfg_what = format!("{} in {}", entry.config, path.display());
    let source_name = format!("docker-archive:{}", path.display());
    // Docker names the config by its digest (`<hex>.json`, or `blobs/sha256/<hex>`).
    if let Some(named) = hex_in_name(&entry.config) {
        let actual = Digest::of(&config_bytes);
        if actual != named {
            return Err(ImageError::Corrupt {
                digest: named,
                actual,
                size: config_bytes.len() as u64,
                expected_size: config_bytes.len() as u64,
                source_name: format!("{source_name} ({})", entry.config),
            });
        }
    }
    let config: Raw<ImageConfig> = crate::select::parse(config_bytes, &cfg_what)?;
    if config.value.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(malformed(
            cfg_what,
            "rootfs.diff_ids and manifest.json's Layers differ in length",
        ));
    }
    let mut names = HashMap::new();
    let mut descriptors = Vec::new();
    for (l, diff_id) in entry.layers.iter().zip(&config.value.rootfs.diff_ids) {
        let what = format!("{l} in {}", path.display());
        let mut r = index
            .reader(l)
            .ok_or_else(|| not_found(path.display().to_string(), index.lacks(l)))?;
        let mut head = [0u8; 4];
        let n = r.read(&mut head).map_err(io_err(&what))?;
        let mt = match &head[..n] {
            [0x1f, 0x8b, ..] => media_type::DOCKER_LAYER_GZIP,
            [0x28, 0xb5, 0x2f, 0xfd] => media_type::OCI_LAYER_ZSTD,
            _ => "application/vnd.docker.image.rootfs.diff.tar",
        };
        // One pass: the digest of the bytes as stored, and the diff_id of what they
        // decompress to, which the config claims.
        let (digest, size, actual_diff) =
            hash_layer(&head[..n], &mut r, mt).map_err(io_err(&what))?;
        if actual_diff != *diff_id {
            return Err(ImageError::Corrupt {
                digest: diff_id.clone(),
                actual: actual_diff,
                size,
                expected_size: size,
                source_name: format!(
                    "{source_name} ({l}, uncompressed, against the config's diff_id)"
                ),
            });
        }
        names.insert(digest.clone(), l.clone());
        descriptors.push(Descriptor::new(mt, digest, size));
    }
    names.insert(config.digest(), entry.config.clone());
    let manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::DOCKER_MANIFEST.to_string()),
        artifact_type: None,
        config: config.descriptor(media_type::DOCKER_CONFIG),
        layers: descriptors,
        subject: None,
        annotations: Default::default(),
    });
    let descriptor = manifest.descriptor(media_type::DOCKER_MANIFEST);
    let made = HashMap::from([(manifest.digest(), manifest.bytes)]);
    Ok(Top {
        blobs: Arc::new(ArchiveBlobs {
            index,
            names,
            made,
            transport: "docker-archive",
        }),
        descriptor,
    })
}
