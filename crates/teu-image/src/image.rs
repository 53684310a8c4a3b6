//! The image model.

use std::io::Read;
use std::sync::Arc;

use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Index, Manifest, Raw};

use crate::blob::BlobSource;
use crate::error::ImageError;

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

/// A multi-platform image: an index, the images it lists (in index order) and the
/// indexes nested in it, so that copying it keeps every document its bytes name.
#[derive(Clone, Debug)]
pub struct ImageIndex {
    pub index: Raw<Index>,
    pub images: Vec<Image>,
    pub indexes: Vec<ImageIndex>,
}

impl ImageIndex {
    /// An index of `images` and nothing nested.
    pub fn new(index: Raw<Index>, images: Vec<Image>) -> ImageIndex {
        ImageIndex {
            index,
            images,
            indexes: Vec::new(),
        }
    }

    fn media_type(&self) -> &str {
        self.index
            .value
            .media_type
            .as_deref()
            .unwrap_or(media_type::OCI_INDEX)
    }

    fn descriptor(&self) -> Descriptor {
        self.index.descriptor(self.media_type())
    }

    fn all_images<'a>(&'a self, out: &mut Vec<&'a Image>) {
        out.extend(self.images.iter());
        for x in &self.indexes {
            x.all_images(out);
        }
    }

    /// Nested indexes, innermost first, each once: the order a registry needs them in.
    fn nested_documents<'a>(&'a self, out: &mut Vec<&'a ImageIndex>) {
        for x in &self.indexes {
            x.nested_documents(out);
            out.push(x);
        }
    }
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
            Artifact::Index(x) => x.media_type(),
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
            Artifact::Index(x) => x.descriptor(),
        }
    }

    /// Every image, those of nested indexes included, in index order.
    pub fn images(&self) -> Vec<&Image> {
        match self {
            Artifact::Image(i) => vec![i],
            Artifact::Index(x) => {
                let mut v = Vec::new();
                x.all_images(&mut v);
                v
            }
        }
    }

    /// Layers and configs, each once, in manifest order: the blobs a sink plans for
    /// (manifests and indexes are written after them, see [`Artifact::blobs`]).
    pub fn content_blobs(&self) -> Vec<(Descriptor, BlobRef<'_>)> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for img in self.images() {
            for (d, b) in img.blobs() {
                if seen.insert(d.digest.clone()) {
                    out.push((d.clone(), b));
                }
            }
        }
        out
    }

    /// Every blob, each once: layers and configs first, then manifests, then the index;
    /// the order a registry needs them in (a manifest after its blobs).
    pub fn blobs(&self) -> Vec<(Descriptor, BlobRef<'_>)> {
        let mut out = self.content_blobs();
        let mut seen: std::collections::HashSet<Digest> =
            out.iter().map(|(d, _)| d.digest.clone()).collect();
        for img in self.images() {
            let d = img.descriptor();
            if seen.insert(d.digest.clone()) {
                out.push((d, BlobRef::Bytes(&img.manifest.bytes)));
            }
        }
        if let Artifact::Index(x) = self {
            let mut nested = Vec::new();
            x.nested_documents(&mut nested);
            for n in nested {
                let d = n.descriptor();
                if seen.insert(d.digest.clone()) {
                    out.push((d, BlobRef::Bytes(&n.index.bytes)));
                }
            }
            out.push((self.descriptor(), BlobRef::Bytes(&x.index.bytes)));
        }
        out
    }

    /// Manifests and nested indexes below the top document, innermost first, each once:
    /// what a registry must hold (by digest) before the top document can name them.
    pub fn child_documents(&self) -> Vec<(Descriptor, &[u8])> {
        let Artifact::Index(x) = self else {
            return Vec::new();
        };
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for img in self.images() {
            let d = img.descriptor();
            if seen.insert(d.digest.clone()) {
                out.push((d, &img.manifest.bytes[..]));
            }
        }
        let mut nested = Vec::new();
        x.nested_documents(&mut nested);
        for n in nested {
            let d = n.descriptor();
            if seen.insert(d.digest.clone()) {
                out.push((d, &n.index.bytes[..]));
            }
        }
        out
    }
}

impl From<Image> for Artifact {
    fn from(i: Image) -> Self {
        Artifact::Image(i)
    }
}
