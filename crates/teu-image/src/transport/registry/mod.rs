//! Images in a registry, as a source ([`RegistrySource`]: a tag or digest resolved to its
//! manifest or index; layers only referenced, their bytes read when, and only if, a sink
//! needs them, so a build on a registry base downloads a few kilobytes of JSON) and as a
//! sink ([`RegistrySink`], the push planner in [`push`]).

mod push;

pub use push::RegistrySink;

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use teu_oci::{Digest, RegistryRef};
use teu_registry::Client;

use super::{Source, Top};
use crate::blob::BlobSource;
use crate::error::ImageError;

/// One repository of a registry, as a blob source.
#[derive(Debug, Clone)]
pub struct RegistryBlobs {
    pub client: Client,
    pub registry: String,
    pub repository: String,
    /// Manifests already fetched (by tag, to learn the digest), so resolving them again
    /// by digest costs no request.
    fetched: Arc<Mutex<HashMap<Digest, Vec<u8>>>>,
}

impl RegistryBlobs {
    pub fn new(client: &Client, r: &RegistryRef) -> RegistryBlobs {
        RegistryBlobs {
            client: client.clone(),
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            fetched: Arc::default(),
        }
    }
}

impl BlobSource for RegistryBlobs {
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

/// The reference as the registry knows it: the digest or tag to ask for.
pub fn reference_of(r: &RegistryRef) -> String {
    match (&r.digest, r.tag_or_latest()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    }
}

/// `HOST/REPO[:TAG|@DIGEST]` as a source.
pub struct RegistrySource {
    client: Client,
    r: RegistryRef,
}

impl RegistrySource {
    pub fn new(client: &Client, r: &RegistryRef) -> RegistrySource {
        RegistrySource {
            client: client.clone(),
            r: r.clone(),
        }
    }
}

impl Source for RegistrySource {
    fn name(&self) -> String {
        self.r.to_string()
    }
    /// One manifest request; what it returns is kept for the resolution that follows.
    fn open(&self) -> Result<Top, ImageError> {
        let top = self.client.get_manifest(
            &self.r.registry,
            &self.r.repository,
            &reference_of(&self.r),
        )?;
        let descriptor = top.descriptor();
        let blobs = RegistryBlobs::new(&self.client, &self.r);
        blobs
            .fetched
            .lock()
            .expect("cache")
            .insert(top.digest, top.bytes);
        Ok(Top {
            blobs: Arc::new(blobs),
            descriptor,
        })
    }
    fn tags(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.client.tags(
            &self.r.registry,
            &self.r.repository,
            self.client.tag_page_size(),
        )?)
    }
    fn is_pinned(&self) -> bool {
        self.r.digest.is_some()
    }
    fn image_name(&self) -> Result<Option<RegistryRef>, ImageError> {
        Ok(Some(RegistryRef {
            digest: None,
            ..self.r.clone()
        }))
    }
    fn base_name(&self) -> Option<String> {
        Some(self.r.to_string())
    }
}
