//! Registry quirks, in one place. Each registry follows the distribution spec with a few
//! deviations that break a naive client; the upload code asks [`Quirks`] instead of
//! matching host names itself. docs/registry.md has the same table for users.
//!
//! | profile | detected by | quirk | what teu does |
//! | --- | --- | --- | --- |
//! | ghcr | `ghcr.io` | PATCH chunks over 4 MiB are refused | chunks capped at 4 MiB |
//! | ecr | `*.dkr.ecr.*.amazonaws.com` | PATCH answers 201; chunks under 5 MiB (but the last) refused; no repository is created on push | any 2xx accepted on PATCH; chunks ≥ 5 MiB; a missing repository is reported with the fix |
//! | quay | `quay.io` | a mount without `from` fails; 429 without `Retry-After` | `from` always sent; backoff when no `Retry-After` |
//! | harbor | `--registry-profile` | a mount from a repository the user cannot read answers 401, not 202 | a refused mount falls back to an upload |
//! | artifactory | `*.jfrog.io` | no cross-repository mounts | mounts skipped, blobs uploaded (or streamed) |
//! | dockerhub | `docker.io` | pull limits in `ratelimit-*` headers | the limit and what remains are put in the error |
//!
//! Several behaviours are handled for every registry because they are harmless elsewhere
//! (2xx on PATCH, mount refusals, 429 without `Retry-After`); the profile only changes
//! what must be decided before a request is sent (chunk sizes, whether to try a mount).

/// What teu must know about a registry before talking to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quirks {
    pub profile: &'static str,
    /// Largest PATCH chunk the registry accepts.
    pub max_chunk: Option<u64>,
    /// Smallest PATCH chunk (except the last).
    pub min_chunk: Option<u64>,
    /// Cross-repository mounts work.
    pub mounts: bool,
    /// Pushing to a repository that does not exist fails (it must be created first).
    pub needs_existing_repository: bool,
}

const MIB: u64 = 1 << 20;

impl Quirks {
    pub fn default_profile() -> Quirks {
        Quirks {
            profile: "default",
            max_chunk: None,
            min_chunk: None,
            mounts: true,
            needs_existing_repository: false,
        }
    }

    /// The profile with this name (`ghcr`, `ecr`, `quay`, `harbor`, `artifactory`,
    /// `dockerhub`, `default`).
    pub fn profile(name: &str) -> Option<Quirks> {
        let d = Quirks::default_profile();
        Some(match name {
            "default" => d,
            "ghcr" => Quirks {
                profile: "ghcr",
                max_chunk: Some(4 * MIB),
                ..d
            },
            "ecr" => Quirks {
                profile: "ecr",
                min_chunk: Some(5 * MIB),
                needs_existing_repository: true,
                ..d
            },
            "quay" => Quirks {
                profile: "quay",
                ..d
            },
            "harbor" => Quirks {
                profile: "harbor",
                ..d
            },
            "artifactory" => Quirks {
                profile: "artifactory",
                mounts: false,
                ..d
            },
            "dockerhub" => Quirks {
                profile: "dockerhub",
                ..d
            },
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] = &[
        "default",
        "ghcr",
        "ecr",
        "quay",
        "harbor",
        "artifactory",
        "dockerhub",
    ];

    /// The profile a registry host gets unless overridden.
    pub fn detect(registry: &str) -> Quirks {
        let host = registry.split(':').next().unwrap_or(registry);
        let name = if host == "ghcr.io" {
            "ghcr"
        } else if host.ends_with(".amazonaws.com") && host.contains(".dkr.ecr.") {
            "ecr"
        } else if host == "quay.io" {
            "quay"
        } else if host.ends_with(".jfrog.io") {
            "artifactory"
        } else if registry == teu_oci::DOCKER_HUB {
            "dockerhub"
        } else {
            "default"
        };
        Quirks::profile(name).expect("known profile")
    }

    /// The PATCH chunk size to use given teu's preferred size.
    pub fn chunk_size(&self, preferred: u64) -> u64 {
        let mut c = preferred.max(1);
        if let Some(max) = self.max_chunk {
            c = c.min(max);
        }
        if let Some(min) = self.min_chunk {
            c = c.max(min);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_and_chunk_bounds() {
        assert_eq!(Quirks::detect("ghcr.io").chunk_size(32 * MIB), 4 * MIB);
        let ecr = Quirks::detect("123.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(ecr.profile, "ecr");
        assert_eq!(ecr.chunk_size(MIB), 5 * MIB);
        assert!(!Quirks::detect("acme.jfrog.io").mounts);
        assert_eq!(Quirks::detect("localhost:5000").profile, "default");
        assert_eq!(Quirks::detect("docker.io").profile, "dockerhub");
        for n in Quirks::NAMES {
            assert!(Quirks::profile(n).is_some());
        }
    }
}
