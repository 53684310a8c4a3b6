//! The image model.

use std::io::Read;
use std::sync::Arc;

use teu_oci::{media_type, Descriptor, Digest, ImageConfig, Manifest, Raw};

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
