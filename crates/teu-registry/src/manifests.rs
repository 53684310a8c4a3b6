//! Manifests and indexes, by tag or digest, and tag listing.

use reqwest::header::{HeaderMap, CONTENT_TYPE, LINK};
use reqwest::Method;
use teu_oci::{media_type, Descriptor, Digest};

use crate::client::{pull, push, Client, Request};
use crate::{invalid, RegistryError};

/// Every manifest kind teu reads, OCI and Docker.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

const MAX_MANIFEST: u64 = 16 << 20;

/// A manifest as the registry served it.
#[derive(Clone, Debug)]
pub struct ManifestResponse {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl ManifestResponse {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.media_type,
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
}

fn media_type_of(headers: &HeaderMap, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    // The document's own mediaType wins over a Content-Type a proxy may have rewritten.
    match serde_json::from_slice::<Probe>(body) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => media_type::OCI_INDEX.to_string(),
        _ => headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
            .unwrap_or_else(|| media_type::OCI_MANIFEST.to_string()),
    }
}

impl Client {
    /// GET a manifest by tag or digest. By digest the bytes are verified; by tag the
    /// digest is computed from the bytes (a `Docker-Content-Digest` that disagrees is an
    /// error: something between us and the registry changed them).
    pub fn get_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<ManifestResponse, RegistryError> {
        let what = format!("manifest {registry}/{repo}{}", sep(reference));
        let req = Request {
            method: Method::GET,
            registry,
            url: self.url(registry, &format!("/v2/{repo}/manifests/{reference}")),
            scope: pull(repo),
            headers: vec![("Accept", ACCEPT_MANIFESTS.into())],
            body: None,
            retry: true,
            what: &what,
        };
        let (_, headers, bytes) = self.fetch(&req, &[200], MAX_MANIFEST)?;
        let digest = Digest::of(&bytes);
        if let Ok(wanted) = reference.parse::<Digest>() {
            if wanted != digest {
                return Err(invalid(
                    &what,
                    format!("the registry served content with digest {digest}"),
                ));
            }
        }
        if let Some(h) = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            if h != digest {
                return Err(invalid(
                    &what,
                    format!("Docker-Content-Digest says {h} but the bytes hash to {digest}"),
                ));
            }
        }
        let media_type = media_type_of(&headers, &bytes);
        Ok(ManifestResponse {
            bytes,
            media_type,
            digest,
        })
    }

    /// HEAD a manifest: its descriptor, or None when the repository lacks it.
    pub fn head_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let what = format!("manifest {registry}/{repo}{}", sep(reference));
        let req = Request {
            method: Method::HEAD,
            registry,
            url: self.url(registry, &format!("/v2/{repo}/manifests/{reference}")),
            scope: pull(repo),
            headers: vec![("Accept", ACCEPT_MANIFESTS.into())],
            body: None,
            retry: true,
            what: &what,
        };
        let r = self.execute(&req, &[200], |r| {
            let h = r.headers();
            let digest = h
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok());
            let mt = h
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok((digest, mt, crate::blobs::header_length(&r)))
        });
        match r {
            Ok((Some(d), Some(mt), Some(n))) => Ok(Some(Descriptor::new(&mt, d, n))),
            // No digest header: fall back to GET, which computes it.
            Ok(_) => self
                .get_manifest(registry, repo, reference)
                .map(|m| Some(m.descriptor())),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PUT a manifest under a tag or its digest; returns its digest.
    pub fn put_manifest(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let what = format!("pushing manifest {registry}/{repo}{}", sep(reference));
        let body = || Ok(reqwest::blocking::Body::from(bytes.to_vec()));
        let req = Request {
            method: Method::PUT,
            registry,
            url: self.url(registry, &format!("/v2/{repo}/manifests/{reference}")),
            scope: push(repo),
            headers: vec![("Content-Type", media_type.to_string())],
            body: Some(&body),
            // A manifest PUT is idempotent: same bytes, same result.
            retry: true,
            what: &what,
        };
        self.execute(&req, &[200, 201, 202], |_| Ok(()))?;
        self.inner
            .counters
            .bytes_up
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(Digest::of(bytes))
    }

    /// Every tag of `repo`, asking for `page` at a time and following `Link` pagination.
    pub fn tags(
        &self,
        registry: &str,
        repo: &str,
        page: usize,
    ) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let what = format!("tags of {registry}/{repo}");
        let mut url = self.url(registry, &format!("/v2/{repo}/tags/list?n={}", page.max(1)));
        let mut tags = Vec::new();
        for _ in 0..10_000 {
            let req = Request {
                method: Method::GET,
                registry,
                url: url.clone(),
                scope: pull(repo),
                headers: vec![],
                body: None,
                retry: true,
                what: &what,
            };
            let (_, headers, body) = self.fetch(&req, &[200], MAX_MANIFEST)?;
            let page: Page = serde_json::from_slice(&body)
                .map_err(|e| invalid(&what, format!("the answer is not a tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next_link(&headers) {
                Some(next) => url = self.location(registry, &next)?.to_string(),
                None => return Ok(tags),
            }
        }
        Err(invalid(what, "more than 10000 pages"))
    }
}

fn sep(reference: &str) -> String {
    if reference.contains(':') {
        format!("@{reference}")
    } else {
        format!(":{reference}")
    }
}

/// `<url>; rel="next"` from a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))
        .and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l.find('>')?;
            Some(l[start..end].to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_page_links() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        h.insert(
            LINK,
            HeaderValue::from_static(r#"<https://x/y>; rel="prev""#),
        );
        assert_eq!(next_link(&h), None);
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn media_type_comes_from_the_document_first() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(
            media_type_of(
                &h,
                br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#
            ),
            media_type::OCI_INDEX
        );
        assert_eq!(
            media_type_of(&h, br#"{"manifests":[]}"#),
            media_type::OCI_INDEX
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
        );
        assert_eq!(media_type_of(&h, b"{}"), media_type::OCI_MANIFEST);
    }
}
