//! `teu convert`: an existing image or index, layer by layer, in another compression
//! (eStargz included), with its configs' diff_ids, manifests and index rewritten.
//!
//! Each source layer is read once through its image's blob source (a registry layer is
//! streamed, not downloaded first), its digest verified as it is read, decompressed and
//! written again by teu's own pipeline into the store, which is also the cache: a
//! record keyed by (source layer digest, target encoder and settings, teu's layer format)
//! names the converted blob, so converting the same layer again reads nothing. Layers
//! already in the target form are converted too (their bytes are teu's afterwards, which
//! is what makes conversion reproducible); non-layer blobs are kept.
//!
//! gzip, zstd and uncompressed targets keep the tar stream byte for byte (only the
//! compression changes, so the diff_id stays). An eStargz target needs the whole layout
//! planned before it is written (the TOC names every member), so the tar is spooled,
//! decompressed, into the store's temporary directory and read back as entries
//! ([`teu_layer::estargz::convert`]), in their order and with their metadata.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

use serde::Serialize;
use teu_image::{Artifact, BlobSource, Image, ImageIndex, Layer, StoreSource};
use teu_layer::cache::{cache_dir, lookup, write_record};
use teu_layer::pipeline::build_layer_from_tar_with;
use teu_layer::sha::Sha256State;
use teu_layer::{build_layer, BuiltLayer, Compression, LayerOptions, PipelineError};
use teu_oci::{media_type, Descriptor, Digest, Index, Manifest, Raw};
use teu_progress::Reporter;
use teu_store::Store;

use crate::BuildError;

#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub compression: Compression,
    /// Compression threads per layer; the output does not depend on it.
    pub jobs: usize,
    pub store: Store,
    pub progress: Reporter,
    /// Convert every layer again, without reading or writing conversion records.
    pub no_cache: bool,
}

/// One layer's conversion.
#[derive(Clone, Debug, Serialize)]
pub struct ConvertedLayer {
    pub from: Digest,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub media_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toc_digest: Option<Digest>,
    /// Found in the conversion cache (nothing read).
    pub cached: bool,
}

const LAYER_TYPES: [&str; 5] = [
    media_type::OCI_LAYER_GZIP,
    media_type::OCI_LAYER_ZSTD,
    media_type::OCI_LAYER_TAR,
    media_type::DOCKER_LAYER_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Convert every image of `artifact`; returns the new artifact (its layers in
/// `opts.store`) and what happened to each distinct layer, in order.
pub fn convert(
    artifact: &Artifact,
    opts: &ConvertOptions,
) -> Result<(Artifact, Vec<ConvertedLayer>), BuildError> {
    let mut done: HashMap<Digest, ConvertedLayer> = HashMap::new();
    let mut order = Vec::new();
    let store_source: Arc<dyn BlobSource> = Arc::new(StoreSource(opts.store.clone()));
    let mut cx = Cx {
        opts,
        done: &mut done,
        order: &mut order,
        store_source,
    };
    let out = match artifact {
        Artifact::Image(i) => Artifact::Image(cx.image(i)?),
        Artifact::Index(x) => Artifact::Index(cx.index(x)?),
    };
    let report = order.iter().map(|d| done[d].clone()).collect();
    Ok((out, report))
}

struct Cx<'a> {
    opts: &'a ConvertOptions,
    done: &'a mut HashMap<Digest, ConvertedLayer>,
    order: &'a mut Vec<Digest>,
    store_source: Arc<dyn BlobSource>,
}

impl Cx<'_> {
    fn index(&mut self, x: &ImageIndex) -> Result<ImageIndex, BuildError> {
        let mut renamed: HashMap<Digest, Descriptor> = HashMap::new();
        let mut images = Vec::new();
        for img in &x.images {
            let new = self.image(img)?;
            renamed.insert(img.digest(), new.descriptor());
            images.push(new);
        }
        let mut indexes = Vec::new();
        for n in &x.indexes {
            let new = self.index(n)?;
            let mt = n
                .index
                .value
                .media_type
                .clone()
                .unwrap_or_else(|| media_type::OCI_INDEX.to_string());
            renamed.insert(n.index.digest(), new.index.descriptor(&mt));
            indexes.push(new);
        }
        let mut index: Index = x.index.value.clone();
        for d in &mut index.manifests {
            if let Some(new) = renamed.get(&d.digest) {
                d.digest = new.digest.clone();
                d.size = new.size;
            }
        }
        Ok(ImageIndex {
            index: Raw::encode(index),
            images,
            indexes,
        })
    }

    fn image(&mut self, img: &Image) -> Result<Image, BuildError> {
        let docker = img.manifest_media_type() == media_type::DOCKER_MANIFEST;
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for l in &img.layers {
            if !LAYER_TYPES.contains(&l.descriptor.media_type.as_str()) {
                diff_ids.push(l.diff_id.clone());
                layers.push(l.clone());
                continue;
            }
            let c = self.layer(l)?;
            let mut d = l.descriptor.clone();
            d.digest = c.digest.clone();
            d.size = c.size;
            d.media_type = layer_media_type(&c.media_type, docker).map_err(|message| {
                BuildError::Unsupported {
                    origin: format!("layer {}", l.descriptor.digest),
                    message,
                }
            })?;
            d.annotations
                .remove(teu_layer::estargz::TOC_DIGEST_ANNOTATION);
            d.annotations
                .remove(teu_layer::estargz::UNCOMPRESSED_SIZE_ANNOTATION);
            if let Some(toc) = &c.toc_digest {
                d.annotations.insert(
                    teu_layer::estargz::TOC_DIGEST_ANNOTATION.to_string(),
                    toc.to_string(),
                );
                d.annotations.insert(
                    teu_layer::estargz::UNCOMPRESSED_SIZE_ANNOTATION.to_string(),
                    c.uncompressed_size.to_string(),
                );
            }
            diff_ids.push(c.diff_id.clone());
            layers.push(Layer {
                descriptor: d,
                diff_id: c.diff_id,
                source: Arc::clone(&self.store_source),
            });
        }
        // The config: only rootfs.diff_ids change; every other field stays as it was.
        let mut config: serde_json::Value =
            serde_json::from_slice(&img.config.bytes).map_err(|e| BuildError::Unsupported {
                origin: format!("config {}", img.manifest.value.config.digest),
                message: format!("not JSON: {e}"),
            })?;
        config["rootfs"]["diff_ids"] = serde_json::Value::Array(
            diff_ids
                .iter()
                .map(|d| serde_json::Value::String(d.to_string()))
                .collect(),
        );
        let bytes = serde_json::to_vec(&config).expect("JSON serializes");
        let config =
            Raw::parse(bytes, "the converted config").map_err(|e| BuildError::Unsupported {
                origin: format!("config {}", img.manifest.value.config.digest),
                message: e.to_string(),
            })?;
        let mut manifest: Manifest = img.manifest.value.clone();
        manifest.config.digest = config.digest();
        manifest.config.size = config.bytes.len() as u64;
        manifest.layers = layers.iter().map(|l| l.descriptor.clone()).collect();
        Ok(Image {
            manifest: Raw::encode(manifest),
            config,
            layers,
        })
    }

    fn layer(&mut self, l: &Layer) -> Result<ConvertedLayer, BuildError> {
        let from = &l.descriptor.digest;
        if let Some(c) = self.done.get(from) {
            return Ok(c.clone());
        }
        let opts = self.opts;
        let record = cache_dir(&opts.store)
            // Beside build records, so `teu cache gc` drops it with its blob.
            .join("layers")
            .join(conversion_key(from, &opts.compression).hex());
        let (built, cached) = match (!opts.no_cache)
            .then(|| lookup(&record, &opts.store))
            .flatten()
        {
            Some(b) => (b, true),
            None => {
                let b = convert_layer(l, opts)?;
                if !opts.no_cache {
                    write_record(&record, &b)?;
                }
                (b, false)
            }
        };
        let c = ConvertedLayer {
            from: from.clone(),
            digest: built.digest.clone(),
            size: built.size,
            diff_id: built.diff_id.clone(),
            uncompressed_size: built.uncompressed_size,
            media_type: built.media_type.to_string(),
            toc_digest: built.toc_digest.clone(),
            cached,
        };
        self.done.insert(from.clone(), c.clone());
        self.order.push(from.clone());
        Ok(c)
    }
}

fn layer_media_type(oci: &str, docker: bool) -> Result<String, String> {
    if !docker {
        return Ok(oci.to_string());
    }
    match oci {
        media_type::OCI_LAYER_GZIP => Ok(media_type::DOCKER_LAYER_GZIP.to_string()),
        media_type::OCI_LAYER_TAR => Ok("application/vnd.docker.image.rootfs.diff.tar".to_string()),
        _ => Err("a Docker manifest has no zstd layers; convert to gzip or estargz, or convert an OCI image".to_string()),
    }
}

/// The conversion record's name: what the converted bytes are a function of.
fn conversion_key(from: &Digest, c: &Compression) -> Digest {
    let text = format!(
        "teu convert\0{}\0{}\0{}",
        teu_layer::LAYER_FORMAT_VERSION,
        c.encoder_id(),
        from
    );
    Digest::of(text.as_bytes())
}

/// Hashes what is read through it, to check a source blob against its digest.
struct Hashing<R> {
    inner: R,
    hash: Sha256State,
    /// The descriptor's size: a source that sends more is cut off there, so a lying or
    /// runaway blob cannot fill the spool or the store before the digest check.
    limit: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        if self.hash.len() > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the blob is longer than the {} bytes its descriptor names",
                    self.limit
                ),
            ));
        }
        Ok(n)
    }
}

fn convert_layer(l: &Layer, opts: &ConvertOptions) -> Result<BuiltLayer, BuildError> {
    let from = &l.descriptor.digest;
    let origin = format!("layer {from} (from {})", l.source.name());
    let read_err = |source: io::Error| PipelineError::Read {
        origin: origin.clone(),
        path: "/".to_string(),
        source_path: "the layer blob".to_string(),
        source,
    };
    let raw = l.source.open(from)?;
    let mut hashed = Hashing {
        inner: raw,
        hash: Sha256State::new(),
        limit: l.descriptor.size,
    };
    let lopts = LayerOptions {
        compression: opts.compression,
        jobs: opts.jobs,
        progress: opts.progress.clone(),
        name: from.short(),
    };
    let built = {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut hashed);
        let head = buffered.fill_buf().map_err(read_err)?.to_vec();
        let mut tar: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::read::MultiGzDecoder::new(buffered))
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_err)?)
        } else {
            Box::new(buffered)
        };
        if opts.compression.estargz_chunk().is_some() {
            let mut spool = tempfile::tempfile_in(opts.store.tmp_dir()).map_err(read_err)?;
            io::copy(&mut tar, &mut spool).map_err(read_err)?;
            // Whatever follows the compressed stream belongs to the blob too.
            drop(tar);
            let spool = Arc::new(spool);
            let tarball = Arc::new(teu_layer::entry::Tarball {
                path: std::path::PathBuf::from(format!("layer {from}")),
                stat: teu_layer::cache::stat::FileStat::from_metadata(
                    &spool.metadata().map_err(read_err)?,
                ),
                read_at: 0,
                sha256: [0; 32],
            });
            let entries =
                teu_layer::estargz::convert::entries_of_tar(Arc::clone(&spool), tarball, &origin)
                    .map_err(PipelineError::from)?;
            let entries = teu_layer::estargz::convert::arrange_converted(entries);
            let built = build_layer(&entries, &lopts, &opts.store)?;
            finish_reading(&mut hashed).map_err(read_err)?;
            built
        } else {
            let segments = teu_layer::cache::segments::SegmentCache::new(&opts.store);
            let built = build_layer_from_tar_with(
                &mut tar,
                &origin,
                &lopts,
                &opts.store,
                (!opts.no_cache).then_some(&segments),
            )?;
            drop(tar);
            finish_reading(&mut hashed).map_err(read_err)?;
            built
        }
    };
    let actual = Digest::from_sha256(hashed.hash.finish());
    if &actual != from || hashed.hash.len() != l.descriptor.size {
        return Err(BuildError::Unsupported {
            origin,
            message: format!(
                "the blob read is {actual} ({} bytes), not the {} bytes its descriptor names: not converted",
                hashed.hash.len(),
                l.descriptor.size
            ),
        });
    }
    Ok(built)
}

/// Read what is left of a blob (past the compressed stream's end), so its hash covers
/// every byte.
fn finish_reading<R: Read>(r: &mut Hashing<R>) -> io::Result<()> {
    io::copy(r, &mut io::sink()).map(|_| ())
}
