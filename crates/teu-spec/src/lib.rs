//! The build spec, `teu.toml` (documented key by key in `docs/spec.md`), and its twin made
//! from command-line flags.
//!
//! Parsing is strict: an unknown key is an error, because a typo that passes silently
//! builds a different image than the user meant. Every value that can be wrong (a mode, a
//! reference, a destination path) is checked here, before any work, and every error names
//! the spec file, line, column and key. Each item of the validated [`Spec`] carries an
//! [`Origin`] with the same position, so errors found later (a missing source file, two
//! entries claiming one path) name the spec line too.

mod error;
pub mod lock;
mod raw;

pub use error::SpecError;

pub use raw::check_port;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use teu_layer::{path, Compression, Origin};
use teu_oci::{Platform, Reference};

/// A validated build spec.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The directory `src` paths are relative to.
    pub dir: PathBuf,
    /// How to name the spec in messages (`teu.toml`, or `command line`).
    pub label: String,
    pub base: Option<(Reference, Origin)>,
    pub compression: Compression,
    /// Platforms to build; empty means "the host's". More than one gives an index.
    pub platforms: Vec<Platform>,
    /// `platforms` was given as a list: write an index even for one platform.
    pub multi_platform: bool,
    /// OCI (default) or Docker v2 schema 2 manifests and media types.
    pub format: Format,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    pub config: ConfigSpec,
    pub layers: Vec<LayerSpec>,
}

/// The image config fields a spec can set. `None` keeps the base's value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigSpec {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub stop_signal: Option<String>,
}

/// The manifest flavour written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Oci,
    /// Docker v2 schema 2 manifests, manifest lists and media types.
    Docker,
}

#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub name: String,
    pub compression: Option<Compression>,
    /// eStargz: glob patterns of absolute image paths whose files go first (prefetched).
    pub prefetch: Vec<String>,
    /// Entries for every platform (`src` may hold `{os}`, `{arch}`, `{variant}`, `{platform}`).
    pub items: Vec<Item>,
    /// Entries for one platform only.
    pub per_platform: BTreeMap<Platform, Vec<Item>>,
    pub origin: Origin,
}

impl LayerSpec {
    /// Whether the layer's content can differ between platforms (so it is built per
    /// platform rather than once).
    pub fn depends_on_platform(&self) -> bool {
        !self.per_platform.is_empty() || self.items.iter().any(Item::has_placeholders)
    }

    /// The entries for `platform`, placeholders expanded.
    pub fn items_for(&self, platform: &Platform) -> Vec<Item> {
        self.items
            .iter()
            .chain(self.per_platform.get(platform).into_iter().flatten())
            .map(|i| i.expand(platform))
            .collect()
    }
}

/// Placeholders allowed in `src` paths.
pub const PLACEHOLDERS: [&str; 4] = ["{os}", "{arch}", "{variant}", "{platform}"];

/// Refuse `{unknown}` placeholders (a typo would otherwise look for a literal path).
pub fn check_placeholders(src: &str) -> Result<(), String> {
    let mut rest = src;
    while let Some(i) = rest.find('{') {
        let after = &rest[i..];
        match PLACEHOLDERS.iter().find(|p| after.starts_with(*p)) {
            Some(p) => rest = &after[p.len()..],
            None => {
                return Err(format!(
                    "unknown placeholder in {src:?} (known: {})",
                    PLACEHOLDERS.join(", ")
                ))
            }
        }
    }
    Ok(())
}

/// Expand placeholders for `platform`: `{platform}` is `os/arch[/variant]`, `{variant}`
/// is empty when the platform has none.
pub fn expand_placeholders(s: &str, platform: &Platform) -> String {
    s.replace("{os}", &platform.os)
        .replace("{arch}", &platform.architecture)
        .replace("{variant}", platform.variant.as_deref().unwrap_or(""))
        .replace("{platform}", &platform.to_string())
}

/// Per-entry metadata overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaOverride {
    pub mode: Option<u32>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    pub mtime: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum Item {
    Copy {
        src: PathBuf,
        /// As written (a trailing `/` means "into this directory").
        dest: String,
        meta: MetaOverride,
        exclude: Option<GlobSet>,
        follow_symlinks: bool,
        origin: Origin,
    },
    Symlink {
        path: String,
        target: String,
        meta: MetaOverride,
        origin: Origin,
    },
    Dir {
        path: String,
        meta: MetaOverride,
        origin: Origin,
    },
    Tar {
        src: PathBuf,
        dest: String,
        normalize: bool,
        origin: Origin,
    },
    Remove {
        path: String,
        origin: Origin,
    },
}

impl Item {
    fn has_placeholders(&self) -> bool {
        match self {
            Item::Copy { src, .. } | Item::Tar { src, .. } => {
                let s = src.to_string_lossy();
                PLACEHOLDERS.iter().any(|p| s.contains(p))
            }
            _ => false,
        }
    }

    /// This item with placeholders in its source expanded for `platform`.
    pub fn expand(&self, platform: &Platform) -> Item {
        let mut item = self.clone();
        if let Item::Copy { src, .. } | Item::Tar { src, .. } = &mut item {
            if let Some(s) = src.to_str() {
                *src = PathBuf::from(expand_placeholders(s, platform));
            }
        }
        item
    }

    pub fn origin(&self) -> &Origin {
        match self {
            Item::Copy { origin, .. }
            | Item::Symlink { origin, .. }
            | Item::Dir { origin, .. }
            | Item::Tar { origin, .. }
            | Item::Remove { origin, .. } => origin,
        }
    }
}

/// Parse a mode written as a string: `"0755"`, `"755"` or `"0o755"`. TOML integers are
/// refused by the spec's types: `mode = 755` would silently mean 0o1363.
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "mode {s:?} is not an octal permission like \"0644\" or \"0755\" (at most 07777)"
        )),
    }
}

/// `exclude` patterns are matched against paths relative to the copied directory;
/// `*` also crosses `/`, so `*.map` leaves out map files at any depth.
pub fn exclude_set(patterns: &[String]) -> Result<Option<GlobSet>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_start_matches('/');
        let glob = GlobBuilder::new(p)
            .literal_separator(false)
            .build()
            .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
        b.add(glob);
    }
    b.build().map(Some).map_err(|e| e.to_string())
}

/// Read a small text file teu did not write (a spec, a lock file): it must be a regular
/// file (a fifo would block forever) and UTF-8 (an error names the line and column of
/// the first byte that is not).
pub(crate) fn read_text(file: &Path, label: &str, what: &str) -> Result<String, SpecError> {
    let err = |message: String| SpecError {
        at: label.to_string(),
        key: None,
        message,
    };
    match std::fs::metadata(file) {
        Ok(m) if !m.is_file() => {
            return Err(err(format!("cannot read {what}: it is not a regular file")))
        }
        _ => {}
    }
    let bytes = std::fs::read(file).map_err(|e| err(format!("cannot read {what}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = good.len() - good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1;
        SpecError {
            at: format!("{label}:{line}:{col}"),
            key: None,
            message: format!(
                "{what} is not UTF-8 text (byte {:#04x})",
                e.as_bytes()[good.len()]
            ),
        }
    })
}

/// Check that an image path stays inside `/`.
pub fn check_dest(dest: &str, allow_root: bool) -> Result<(), String> {
    let r = if allow_root {
        path::normalize_dir(dest.as_bytes()).map(|_| ())
    } else {
        path::normalize(dest.as_bytes()).map(|_| ())
    };
    r.map_err(|e| e.to_string())
}

impl Spec {
    /// Read and validate `teu.toml` at `file`.
    pub fn load(file: &Path) -> Result<Spec, SpecError> {
        let label = file.display().to_string();
        let text = read_text(file, &label, "the spec")?;
        let dir = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Spec::parse(&text, &label, &dir)
    }

    /// Validate spec `text`; `label` names it in messages and `dir` anchors `src` paths.
    pub fn parse(text: &str, label: &str, dir: &Path) -> Result<Spec, SpecError> {
        raw::parse(text, label, dir)
    }

    /// An empty spec for flag-built images (`teu build --copy ...`).
    pub fn empty(dir: &Path, label: &str) -> Spec {
        Spec {
            dir: dir.to_path_buf(),
            label: label.to_string(),
            base: None,
            compression: Compression::default(),
            platforms: Vec::new(),
            multi_platform: false,
            format: Format::Oci,
            annotations: BTreeMap::new(),
            config: ConfigSpec::default(),
            layers: Vec::new(),
        }
    }

    pub fn origin(&self, what: &str) -> Origin {
        Arc::from(format!("{}: {what}", self.label))
    }
}
