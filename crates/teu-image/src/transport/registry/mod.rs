//! Images in a registry, as a source: a tag or digest resolved to a manifest (through an
//! index for the wanted platform) and its config. Layers are only referenced: their bytes
//! are read when, and only if, a sink needs them — a build on a registry base downloads a
//! few kilobytes of JSON, never a base layer.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use teu_oci::{media_type, Descriptor, Digest, Index, Platform, Raw, RegistryRef};
use teu_registry::{Client, ManifestResponse};

use crate::blob::BlobSource;
use crate::image::Image;
use crate::{invalid, ImageError};

/// One repository of a registry, as a blob source.
#[derive(Debug, Clone)]
pub struct RegistrySource {
    pub client: Client,
    pub registry: String,
    pub repository: String,
    /// Manifests already fetched (by tag, to learn the digest), so resolving them again
    /// by digest costs no request.
    pub fetched: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
}

impl RegistrySource {
    pub fn new(client: &Client, r: &RegistryRef) -> RegistrySource {
        RegistrySource {
            client: client.clone(),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            fetched: Arc::default(),
        }
    }
}

/// The source of `r`'s repository and the descriptor of what `r` names now (an index or a
/// manifest): one manifest request, kept for the resolution that follows.
pub fn open_top(
    client: &Client,
    r: &RegistryRef,
) -> Result<(Arc<dyn BlobSource>, Descriptor), ImageError> {
    let top = fetch_top(client, r)?;
    let desc = top.descriptor();
    let source = RegistrySource::new(client, r);
    source
        .fetched
        .lock()
        .expect("cache")
        .insert(top.digest, top.bytes);
    Ok((Arc::new(source), desc))
}

impl BlobSource for RegistrySource {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        Ok(Box::new(self.client.get_blob(
            &self.registry,
            &self.repository,
            digest,
            None,
        )?))
    }
    fn open_manifest(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        if let Some(bytes) = self.fetched.lock().expect("cache").get(digest) {
            return Ok(Box::new(std::io::Cursor::new(bytes.clone())));
        }
        let m = self
            .client
            .get_manifest(&self.registry, &self.repository, &digest.to_string())?;
        Ok(Box::new(std::io::Cursor::new(m.bytes)))
    }
    fn name(&self) -> String {
        format!("docker://{}/{}", self.registry, self.repository)
    }
    fn registry_repository(&self) -> Option<(&str, &str)> {
        Some((&self.registry, &self.repository))
    }
}

/// What a registry reference names: one image, or an index of several.
pub enum Resolved {
    Image(Box<Image>),
    Index {
        index: Box<Raw<Index>>,
        media_type: String,
    },
}

/// The reference as the registry knows it: the digest or tag to ask for.
pub fn reference_of(r: &RegistryRef) -> String {
    match (&r.digest, r.tag_or_latest()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// The top-level manifest (image or index) `r` names, unparsed.
pub fn fetch_top(client: &Client, r: &RegistryRef) -> Result<ManifestResponse, ImageError> {
    Ok(client.get_manifest(&r.registry, &r.repository, &reference_of(r))?)
}

/// Read the image `r` names for `platform`: an index is resolved to the platform's
/// manifest. Reads the manifest(s) and the config, nothing else.
pub fn read_image(
    client: &Client,
    r: &RegistryRef,
    platform: &Platform,
) -> Result<Image, ImageError> {
    let top = fetch_top(client, r)?;
    match resolve(client, r, top)? {
        Resolved::Image(img) => Ok(*img),
        Resolved::Index { index, .. } => {
            let name = r.to_string();
            let child = pick_platform(&index.value, platform, &name)?;
            let m = client.get_manifest(&r.registry, &r.repository, &child.to_string())?;
            match resolve(client, r, m)? {
                Resolved::Image(img) => Ok(*img),
                Resolved::Index { .. } => {
                    Err(invalid(name, "an index inside an index is not supported"))
                }
            }
        }
    }
}

pub fn pick_platform(index: &Index, platform: &Platform, name: &str) -> Result<Digest, ImageError> {
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    index
        .manifests
        .iter()
        .find(|d| {
            media_type::is_manifest(&d.media_type)
                && d.platform.as_ref().is_some_and(|p| p.satisfies(platform))
        })
        .map(|d| d.digest.clone())
        .ok_or_else(|| {
            invalid(
                name,
                format!(
                    "index has no image for {platform} (it has: {})",
                    available.join(", ")
                ),
            )
        })
}

/// Parse a manifest served by the registry; for an image, read its config too.
pub fn resolve(
    client: &Client,
    r: &RegistryRef,
    m: ManifestResponse,
) -> Result<Resolved, ImageError> {
    let name = format!("{}/{}@{}", r.registry, r.repository, m.digest);
    if media_type::is_index(&m.media_type) {
        let index: Raw<Index> =
            Raw::parse(m.bytes, &name).map_err(|e| invalid(&name, e.source.to_string()))?;
        return Ok(Resolved::Index {
            index: Box::new(index),
            media_type: m.media_type,
        });
    }
    if !media_type::is_manifest(&m.media_type) {
        return Err(invalid(
            name,
            format!(
                "media type {:?} is neither an image manifest nor an index (schema 1 and artifacts are not supported)",
                m.media_type
            ),
        ));
    }
    // The shared resolver reads the config and checks it against the manifest; the
    // manifest itself is served from what was just fetched.
    let desc = m.descriptor();
    let source = RegistrySource::new(client, r);
    source
        .fetched
        .lock()
        .expect("cache")
        .insert(m.digest, m.bytes);
    let image = crate::resolve::image(Arc::new(source), &desc)?;
    Ok(Resolved::Image(Box::new(image)))
}
