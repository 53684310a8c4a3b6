use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An OCI platform, written `os/arch[/variant]` on the command line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("platform {0:?} is not of the form os/arch[/variant] (for example linux/amd64)")]
pub struct PlatformError(String);

impl Platform {
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            architecture: arch.to_string(),
            os: os.to_string(),
            os_version: None,
            os_features: None,
            variant: variant.map(str::to_string),
        }
    }

    /// The platform of the machine teu runs on, in OCI's (Go's) names.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "powerpc64" => "ppc64",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// The platform in containerd's canonical form, for matching only (what teu writes is
    /// never rewritten): architecture aliases (`x86_64`, `aarch64`, `armhf`, `i386`) become
    /// OCI's names, `arm` without a variant is `arm/v7`, `arm64/v8` is `arm64`, `amd64/v1`
    /// is `amd64`, and a bare variant number gets its `v`.
    pub fn normalized(&self) -> Platform {
        let os = self.os.to_ascii_lowercase();
        let arch = self.architecture.to_ascii_lowercase();
        let variant = self.variant.as_deref().map(str::to_ascii_lowercase);
        let v = variant.as_deref();
        let (arch, variant): (&str, Option<String>) = match arch.as_str() {
            "aarch64" | "arm64" => (
                "arm64",
                match v {
                    None | Some("8" | "v8" | "v8.0" | "") => None,
                    Some(x) => Some(with_v(x)),
                },
            ),
            "armhf" => ("arm", Some("v7".into())),
            "armel" => ("arm", Some("v6".into())),
            "arm" => (
                "arm",
                match v {
                    None | Some("" | "7" | "v7") => Some("v7".into()),
                    Some(x) => Some(with_v(x)),
                },
            ),
            "x86_64" | "x86-64" | "amd64" => (
                "amd64",
                match v {
                    None | Some("" | "v1" | "1") => None,
                    Some(x) => Some(with_v(x)),
                },
            ),
            "i386" | "386" => ("386", None),
            other => (other, variant.clone()),
        };
        Platform {
            architecture: arch.to_string(),
            os,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant,
        }
    }

    /// How well an image for `self` (from an index) serves a request for `wanted`: `None`
    /// when it cannot, `Some(0)` for the same normalized platform, higher for a worse but
    /// compatible one (as containerd picks): a request without a variant takes any
    /// variant, `arm/v7` also runs `arm/v6` and `arm/v5`, `amd64/v3` also runs `v2` and `v1`.
    pub fn match_rank(&self, wanted: &Platform) -> Option<u32> {
        let (have, want) = (self.normalized(), wanted.normalized());
        if have.os != want.os || have.architecture != want.architecture {
            return None;
        }
        if have.variant == want.variant {
            return Some(0);
        }
        // A request that names no variant (after normalization) takes any, others later.
        if wanted.variant.is_none() && want.architecture != "arm" {
            return Some(1);
        }
        let level = |v: Option<&str>| -> Option<u32> {
            match v {
                None => Some(1),
                Some(v) => v.strip_prefix('v')?.split('.').next()?.parse().ok(),
            }
        };
        match want.architecture.as_str() {
            "arm" | "amd64" => {
                let (h, w) = (
                    level(have.variant.as_deref())?,
                    level(want.variant.as_deref())?,
                );
                (h < w).then_some(1 + w - h)
            }
            _ => None,
        }
    }

    /// Whether an image for `self` (from an index) serves a request for `wanted`; see
    /// [`Platform::match_rank`].
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        self.match_rank(wanted).is_some()
    }
}

fn with_v(v: &str) -> String {
    if v.starts_with('v') {
        v.to_string()
    } else {
        format!("v{v}")
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(PlatformError(s.to_string()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["linux/amd64", "linux/arm/v7", "windows/amd64"] {
            assert_eq!(s.parse::<Platform>().unwrap().to_string(), s);
        }
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn matching_ignores_missing_variant_and_arm64_v8() {
        let arm7: Platform = "linux/arm/v7".parse().unwrap();
        let arm6: Platform = "linux/arm/v6".parse().unwrap();
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm7.satisfies(&arm));
        // As in containerd, an arm/v7 machine runs arm/v6 images, not the other way round.
        assert!(arm6.satisfies(&arm7));
        assert!(!arm7.satisfies(&arm6));
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64.satisfies(&"linux/arm64/v8".parse().unwrap()));
        assert!(!arm64.satisfies(&"linux/amd64".parse().unwrap()));
    }

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn normalization_follows_containerd() {
        assert_eq!(p("linux/aarch64").normalized(), p("linux/arm64"));
        assert_eq!(p("linux/arm64/v8").normalized(), p("linux/arm64"));
        assert_eq!(p("linux/arm").normalized(), p("linux/arm/v7"));
        assert_eq!(p("linux/armhf").normalized(), p("linux/arm/v7"));
        assert_eq!(p("linux/x86_64").normalized(), p("linux/amd64"));
        assert_eq!(p("linux/amd64/v1").normalized(), p("linux/amd64"));
        assert_eq!(p("linux/arm/6").normalized(), p("linux/arm/v6"));
    }

    #[test]
    fn ranks_prefer_exact_then_compatible() {
        // arm64 and arm64/v8 are one platform, both ways.
        assert_eq!(p("linux/arm64/v8").match_rank(&p("linux/arm64")), Some(0));
        assert_eq!(p("linux/arm64").match_rank(&p("linux/arm64/v8")), Some(0));
        // arm/v7 runs v6, not the other way round; plain arm means v7.
        assert_eq!(p("linux/arm/v7").match_rank(&p("linux/arm")), Some(0));
        assert!(p("linux/arm/v6").match_rank(&p("linux/arm/v7")).unwrap() > 0);
        assert_eq!(p("linux/arm/v7").match_rank(&p("linux/arm/v6")), None);
        // amd64/v3 runs v2 and v1 images; v1 is plain amd64.
        assert_eq!(p("linux/amd64").match_rank(&p("linux/amd64/v1")), Some(0));
        assert!(p("linux/amd64").match_rank(&p("linux/amd64/v3")).is_some());
        assert_eq!(p("linux/amd64/v3").match_rank(&p("linux/amd64")), Some(1));
        assert_eq!(p("linux/amd64").match_rank(&p("linux/arm64")), None);
        assert_eq!(p("windows/amd64").match_rank(&p("linux/amd64")), None);
    }
}
