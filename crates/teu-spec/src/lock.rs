//! `teu.lock`: the base images a spec builds on, pinned by digest.
//!
//! Written by `teu lock` next to the spec and meant to be committed. For each base: the
//! reference as the spec writes it, the digest (and media type and size) of what it
//! resolved to, an index or a manifest, and for each platform the manifest and config
//! digests. Bases are in spec order and platforms sorted, so the file only changes when a
//! base does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use teu_oci::Digest;

use crate::SpecError;

pub const LOCK_FILE: &str = "teu.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    pub version: u32,
    #[serde(default, rename = "base")]
    pub bases: Vec<LockedBase>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBase {
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    #[serde(default, rename = "platform")]
    pub platforms: Vec<LockedPlatform>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPlatform {
    pub platform: String,
    pub manifest: Digest,
    pub config: Digest,
}

impl Lockfile {
    /// The lock file beside a spec in `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(LOCK_FILE)
    }

    /// Read `path`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Lockfile>, SpecError> {
        let label = path.display().to_string();
        if !path.exists() && path.symlink_metadata().is_err() {
            return Ok(None);
        }
        let text = crate::read_text(path, &label, "the lock file")?;
        let lock: Lockfile = toml::from_str(&text).map_err(|e| {
            let at = e.span().map_or(label.clone(), |s| {
                let before = &text[..s.start.min(text.len())];
                format!("{label}:{}", before.matches('\n').count() + 1)
            });
            SpecError {
                at,
                key: None,
                message: e.message().trim_end().to_string(),
            }
        })?;
        if lock.version != LOCK_VERSION {
            return Err(SpecError {
                at: label,
                key: Some("version".into()),
                message: format!(
                    "lock file version {} is not supported (this teu writes {LOCK_VERSION}); run teu lock --update",
                    lock.version
                ),
            });
        }
        Ok(Some(lock))
    }

    pub fn base(&self, reference: &str) -> Option<&LockedBase> {
        self.bases.iter().find(|b| b.reference == reference)
    }

    /// The file's text: a header comment, then stable TOML.
    pub fn to_toml(&self) -> String {
        let mut lock = self.clone();
        for b in &mut lock.bases {
            b.platforms.sort();
        }
        let body = toml::to_string(&lock).expect("lock files serialize");
        format!("# Written by `teu lock`; commit it. Builds use the base digests below;\n# `teu lock --update` moves them, `teu build --locked` refuses to.\n{body}")
    }
}

impl LockedBase {
    pub fn platform(&self, platform: &str) -> Option<&LockedPlatform> {
        self.platforms.iter().find(|p| p.platform == platform)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_stable() {
        let d = Digest::of(b"x");
        let lock = Lockfile {
            version: 1,
            bases: vec![LockedBase {
                reference: "oci:base:1".into(),
                digest: d.clone(),
                media_type: "application/vnd.oci.image.index.v1+json".into(),
                size: 10,
                platforms: vec![
                    LockedPlatform {
                        platform: "linux/arm64".into(),
                        manifest: d.clone(),
                        config: d.clone(),
                    },
                    LockedPlatform {
                        platform: "linux/amd64".into(),
                        manifest: d.clone(),
                        config: d.clone(),
                    },
                ],
            }],
        };
        let text = lock.to_toml();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("teu.lock");
        std::fs::write(&p, &text).unwrap();
        let back = Lockfile::load(&p).unwrap().unwrap();
        assert_eq!(back.to_toml(), text);
        assert!(
            text.find("linux/amd64").unwrap() < text.find("linux/arm64").unwrap(),
            "{text}"
        );
        assert!(text.contains("[[base.platform]]"), "{text}");
    }

    #[test]
    fn unknown_keys_and_versions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("teu.lock");
        std::fs::write(&p, "version = 1\nfoo = 2\n").unwrap();
        assert!(Lockfile::load(&p)
            .unwrap_err()
            .to_string()
            .contains("teu.lock:2"));
        std::fs::write(&p, "version = 9\n").unwrap();
        assert!(Lockfile::load(&p)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
        assert!(Lockfile::load(&dir.path().join("none")).unwrap().is_none());
    }
}
