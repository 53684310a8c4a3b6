//! The build spec, `teu.toml` (documented key by key in `docs/spec.md`), and its twin made
//! from command-line flags.
//!
//! Parsing is strict: an unknown key is an error, because a typo that passes silently
//! builds a different image than the user meant. Every value that can be wrong (a mode, a
//! reference, a destination path) is checked here, before any work, and every error names
//! the spec file, line, column and key. Each item of the validated [`Spec`] carries an
//! [`Origin`] with the same position, so errors found later (a missing source file, two
//! entries claiming one path) name the spec line too.

mod raw;

use std::collections::BTreeMap;
use std::fmt;
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
    pub platform: Option<Platform>,
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

#[derive(Clone, Debug)]
pub struct LayerSpec {
    pub name: String,
    pub compression: Option<Compression>,
    pub items: Vec<Item>,
    pub origin: Origin,
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

/// A spec error, with where it is.
#[derive(Debug, thiserror::Error)]
pub struct SpecError {
    /// `file:line:column`, or `command line`.
    pub at: String,
    /// The key, like `layer[0].copy[1].mode`.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.at)?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Parse a mode written as `"0755"`, `"755"`, `"0o755"` (or a TOML integer such as `0o755`).
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
        let text = std::fs::read_to_string(file).map_err(|e| SpecError {
            at: label.clone(),
            key: None,
            message: format!("cannot read the spec: {e}"),
        })?;
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
            platform: None,
            annotations: BTreeMap::new(),
            config: ConfigSpec::default(),
            layers: Vec::new(),
        }
    }

    pub fn origin(&self, what: &str) -> Origin {
        Arc::from(format!("{}: {what}", self.label))
    }
}
