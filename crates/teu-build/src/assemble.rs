//! Config and manifest for each platform's image on top of its base, and the index.

use std::collections::BTreeMap;

use teu_image::{Artifact, Image, ImageIndex, Layer};
use teu_oci::{
    media_type, History, ImageConfig, Index, Manifest, Platform, Raw, RootFs,
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME,
};
use teu_spec::{ConfigSpec, Item, LayerSpec, Spec};

use crate::base::Base;
use crate::rfc3339;

/// Config and manifest for one platform's image.
pub fn image(
    spec: &Spec,
    platform: &Platform,
    base: Option<Base>,
    layers: Vec<Layer>,
    mtime: u64,
) -> Image {
    let created = rfc3339(mtime);
    let (mut config, mut all_layers, base_digest) = match base {
        Some(Base { image: img, name }) => {
            let digest = img.digest();
            (img.config.value, img.layers, Some((digest, name)))
        }
        None => (scratch_config(platform), Vec::new(), None),
    };
    for l in &mut all_layers {
        l.descriptor.media_type = oci_layer_type(&l.descriptor.media_type).to_string();
    }
    apply_config(&mut config.config, &spec.config);
    config.created = Some(created.clone());
    for (layer, spec_layer) in layers.iter().zip(&spec.layers) {
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.history.push(History {
            created: Some(created.clone()),
            created_by: Some(describe(spec_layer, &spec_layer.items_for(platform))),
            ..History::default()
        });
    }
    all_layers.extend(layers);
    let config = Raw::encode(config);

    let mut annotations = spec.annotations.clone();
    if let Some((d, name)) = &base_digest {
        annotations
            .entry(ANNOTATION_BASE_DIGEST.to_string())
            .or_insert_with(|| d.to_string());
        // A registry base is named too (a layout's path would make the digest depend on
        // where the build ran): a later push of this image from a layout can then mount
        // the base's layers from that repository instead of uploading them.
        if let Some(n) = name {
            annotations
                .entry(ANNOTATION_BASE_NAME.to_string())
                .or_insert_with(|| n.clone());
        }
    }
    let manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        artifact_type: None,
        config: config.descriptor(media_type::OCI_CONFIG),
        layers: all_layers.iter().map(|l| l.descriptor.clone()).collect(),
        subject: None,
        annotations,
    });
    Image {
        manifest,
        config,
        layers: all_layers,
    }
}

/// An OCI index of `images`, in the order the platforms were given.
pub fn index_of(images: Vec<Image>, annotations: &BTreeMap<String, String>) -> Artifact {
    let mut index = Index::new();
    index.manifests = images.iter().map(Image::descriptor).collect();
    index.annotations = annotations.clone();
    Artifact::Index(ImageIndex::new(Raw::encode(index), images))
}

pub(crate) fn scratch_config(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        os_version: platform.os_version.clone(),
        os_features: platform.os_features.clone(),
        variant: platform.variant.clone(),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
        },
        ..ImageConfig::default()
    }
}

/// Docker layer media types become their OCI twins (same bytes), so that an image built
/// on a Docker base is a consistent OCI image.
fn oci_layer_type(mt: &str) -> &str {
    match mt {
        media_type::DOCKER_LAYER_GZIP => media_type::OCI_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar" => media_type::OCI_LAYER_TAR,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        other => other,
    }
}

/// Apply the spec's config on top of the base's, as Docker does: env and labels merge
/// (same key replaced), an entrypoint without a cmd clears the inherited cmd.
pub fn apply_config(c: &mut teu_oci::ContainerConfig, s: &ConfigSpec) {
    if let Some(ep) = &s.entrypoint {
        c.entrypoint = Some(ep.clone());
        if s.cmd.is_none() {
            c.cmd = None;
        }
    }
    if let Some(cmd) = &s.cmd {
        c.cmd = Some(cmd.clone());
    }
    if !s.env.is_empty() {
        let env = c.env.get_or_insert_with(Vec::new);
        for (k, v) in &s.env {
            let entry = format!("{k}={v}");
            match env
                .iter_mut()
                .find(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k)
            {
                Some(e) => *e = entry,
                None => env.push(entry),
            }
        }
    }
    if let Some(w) = &s.workdir {
        c.working_dir = Some(w.clone());
    }
    if let Some(u) = &s.user {
        c.user = Some(u.clone());
    }
    if !s.labels.is_empty() {
        let labels = c.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(s.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if !s.exposed_ports.is_empty() {
        let ports = c.exposed_ports.get_or_insert_with(BTreeMap::new);
        for p in &s.exposed_ports {
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            ports.insert(key, serde_json::json!({}));
        }
    }
    if !s.volumes.is_empty() {
        let vols = c.volumes.get_or_insert_with(BTreeMap::new);
        for v in &s.volumes {
            vols.insert(v.clone(), serde_json::json!({}));
        }
    }
    if let Some(sig) = &s.stop_signal {
        c.stop_signal = Some(sig.clone());
    }
}

/// `created_by` for a layer: what it holds, by image path, never by host path or time.
fn describe(layer: &LayerSpec, items: &[Item]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| match i {
            Item::Copy { dest, .. } => format!("copy {dest}"),
            Item::Symlink { path, target, .. } => format!("symlink {path} -> {target}"),
            Item::Dir { path, .. } => format!("dir {path}"),
            Item::Tar {
                dest,
                normalize: true,
                ..
            } => format!("tar {dest}"),
            Item::Tar { .. } => "tar (verbatim)".to_string(),
            Item::Remove { path, .. } => format!("remove {path}"),
        })
        .collect();
    if parts.is_empty() {
        return format!("teu build: layer {:?}: empty", layer.name);
    }
    format!("teu build: layer {:?}: {}", layer.name, parts.join(", "))
}
