//! The image model.

use std::io::Read;
use std::sync::Arc;

use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Raw};

use crate::blob::BlobSource;
use crate::ImageError;

/// A layer: its descriptor in the manifest, its diff_id in the config, and where its
/// bytes are.
#[derive(Clone, Debug)]
pub struct Layer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub source: Arc<dyn BlobSource>,
}

/// A single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Raw<Manifest>,
    pub config: Raw<ImageConfig>,
    pub layers: Vec<Layer>,
}

/// A blob an image needs written, with where to read it.
pub enum BlobRef<'a> {
    Bytes(&'a [u8]),
    Source(&'a dyn BlobSource),
}

impl Image {
    /// The manifest's digest: the image's identity.
    pub fn digest(&self) -> Digest {
        self.manifest.digest()
    }

    pub fn manifest_media_type(&self) -> &str {
        self.manifest
            .value
            .media_type
            .as_deref()
            .unwrap_or(media_type::OCI_MANIFEST)
    }

    /// The descriptor of the manifest, with the image's platform.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = self.manifest.descriptor(self.manifest_media_type());
        d.platform = Some(self.config.value.platform());
        d
    }

    /// Config and layer blobs, in manifest order (config first).
    pub fn blobs(&self) -> Vec<(&Descriptor, BlobRef<'_>)> {
        let mut v = vec![(
            &self.manifest.value.config,
            BlobRef::Bytes(&self.config.bytes),
        )];
        for l in &self.layers {
            v.push((&l.descriptor, BlobRef::Source(l.source.as_ref())));
        }
        v
    }
}

impl BlobRef<'_> {
    pub fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send + '_>, ImageError> {
        match self {
            BlobRef::Bytes(b) => Ok(Box::new(*b)),
            BlobRef::Source(s) => s.open(digest),
        }
    }
}

/// A multi-platform image: an index and the images it lists, in index order.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    pub index: Raw<Index>,
    pub images: Vec<Image>,
}

/// What a build produces and a sink writes: one image, or an index of images.
// One or two of these exist per command; boxing the image would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Artifact {
    Image(Image),
    Index(ImageIndex),
}

impl Artifact {
    pub fn digest(&self) -> Digest {
        match self {
            Artifact::Image(i) => i.digest(),
            Artifact::Index(x) => x.index.digest(),
        }
    }

    pub fn media_type(&self) -> &str {
        match self {
            Artifact::Image(i) => i.manifest_media_type(),
            Artifact::Index(x) => x
                .index
                .value
                .media_type
                .as_deref()
                .unwrap_or(media_type::OCI_INDEX),
        }
    }

    /// The bytes of the top document (manifest or index).
    pub fn root_bytes(&self) -> &[u8] {
        match self {
            Artifact::Image(i) => &i.manifest.bytes,
            Artifact::Index(x) => &x.index.bytes,
        }
    }

    /// The descriptor of the top document; a single image's carries its platform.
    pub fn descriptor(&self) -> Descriptor {
        match self {
            Artifact::Image(i) => i.descriptor(),
            Artifact::Index(x) => x.index.descriptor(self.media_type()),
        }
    }

    pub fn images(&self) -> Vec<&Image> {
        match self {
            Artifact::Image(i) => vec![i],
            Artifact::Index(x) => x.images.iter().collect(),
        }
    }

    /// Every blob, each once: layers and configs first, then manifests, then the index;
    /// the order a registry needs them in (a manifest after its blobs).
    pub fn blobs(&self) -> Vec<(Descriptor, BlobRef<'_>)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let images = self.images();
        for img in &images {
            for (d, b) in img.blobs() {
                if seen.insert(d.digest.clone()) {
                    out.push((d.clone(), b));
                }
            }
        }
        for img in &images {
            let d = img.descriptor();
            if seen.insert(d.digest.clone()) {
                out.push((d, BlobRef::Bytes(&img.manifest.bytes)));
            }
        }
        if let Artifact::Index(x) = self {
            out.push((self.descriptor(), BlobRef::Bytes(&x.index.bytes)));
        }
        out
    }
}

impl From<Image> for Artifact {
    fn from(i: Image) -> Self {
        Artifact::Image(i)
    }
}
