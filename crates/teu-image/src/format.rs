//! Docker v2 schema 2 output (`--format docker`): the same layers and config, described
//! with Docker's manifest, manifest list and media types, for registries and runtimes that
//! do not take OCI media types. Docker's schema defines no annotations, so the manifest's
//! and the config descriptor's are dropped; layer descriptors keep theirs, because
//! containerd and stargz-snapshotter read the eStargz TOC digest there whatever the
//! manifest's media type, and Docker's readers (the registry, skopeo, `docker load`)
//! ignore a field they do not know. zstd layers have no Docker media type and are
//! refused.

use teu_oci::{media_type, Index, Manifest, Raw};

use crate::image::{Artifact, Image, ImageIndex};

const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

fn docker_layer_type(mt: &str) -> Result<&'static str, String> {
    match mt {
        media_type::OCI_LAYER_GZIP | media_type::DOCKER_LAYER_GZIP => Ok(media_type::DOCKER_LAYER_GZIP),
        media_type::OCI_LAYER_TAR | DOCKER_LAYER_TAR => Ok(DOCKER_LAYER_TAR),
        media_type::OCI_LAYER_ZSTD => Err(
            "the docker format has no zstd layers; use compression = \"gzip\" (or \"none\") with format = \"docker\"".to_string(),
        ),
        other => Err(format!("layer media type {other:?} has no Docker equivalent")),
    }
}

fn image_to_docker(mut image: Image) -> Result<Image, String> {
    let m = &image.manifest.value;
    let mut layers = m.layers.clone();
    for (d, l) in layers.iter_mut().zip(image.layers.iter_mut()) {
        d.media_type = docker_layer_type(&d.media_type)
            .map_err(|e| format!("layer {} (from {}): {e}", d.digest, l.source.name()))?
            .to_string();
        l.descriptor = d.clone();
    }
    let mut config = m.config.clone();
    config.media_type = media_type::DOCKER_CONFIG.to_string();
    config.annotations.clear();
    image.manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::DOCKER_MANIFEST.to_string()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: Default::default(),
    });
    Ok(image)
}

/// Rewrite an OCI artifact with Docker media types (new manifest digests, same blobs).
pub fn to_docker(artifact: Artifact) -> Result<Artifact, String> {
    match artifact {
        Artifact::Image(i) => Ok(Artifact::Image(image_to_docker(i)?)),
        Artifact::Index(x) => {
            let images = x
                .images
                .into_iter()
                .map(image_to_docker)
                .collect::<Result<Vec<_>, _>>()?;
            let mut index = Index::new();
            index.media_type = Some(media_type::DOCKER_MANIFEST_LIST.to_string());
            index.manifests = images.iter().map(Image::descriptor).collect();
            Ok(Artifact::Index(ImageIndex::new(Raw::encode(index), images)))
        }
    }
}
