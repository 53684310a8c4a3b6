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

    /// Whether an image for `self` (from an index) serves a request for `wanted`.
    /// A request without a variant takes any variant; `arm64` and `arm64/v8` are the same.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &self.variant) {
            (None, _) => true,
            (Some(w), Some(v)) => w == v,
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
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
        assert!(!arm6.satisfies(&arm7));
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64.satisfies(&"linux/arm64/v8".parse().unwrap()));
        assert!(!arm64.satisfies(&"linux/amd64".parse().unwrap()));
    }
}
