//! Comparing two images: index, manifests, config fields, the layer list, and inside
//! layers that differ, the entries added, removed or changed in content or metadata.
//! Layers are streamed (decompressed and read once each, never unpacked to disk); only
//! per-entry metadata and content digests are held in memory. Used by `teu diff` and by
//! `teu build --verify` to say which entries made two builds differ. The result is data
//! (every digest in full); the command line renders it.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::Serialize;
use serde_json::Value;
use teu_oci::{Digest, Sha256Writer};

use crate::error::{io_err, malformed, ImageError};
use crate::image::{Artifact, Image, Layer};

/// What a tar entry is, as far as a comparison cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryInfo {
    pub kind: &'static str,
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Digest>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub a: String,
    pub b: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum EntryChange {
    Added {
        path: String,
        entry: EntryInfo,
    },
    Removed {
        path: String,
        entry: EntryInfo,
    },
    Changed {
        path: String,
        fields: Vec<FieldChange>,
    },
}

/// A config (or annotation) field that differs; `None` where a side lacks it.
#[derive(Clone, Debug, Serialize)]
pub struct ValueChange {
    pub field: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LayerDiff {
    Same {
        index: usize,
        digest: Digest,
    },
    Changed {
        index: usize,
        a: Digest,
        b: Digest,
        entries: Vec<EntryChange>,
    },
    OnlyInA {
        index: usize,
        digest: Digest,
    },
    OnlyInB {
        index: usize,
        digest: Digest,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageDiff {
    pub platform: String,
    pub a: Digest,
    pub b: Digest,
    pub manifest: Vec<ValueChange>,
    pub config: Vec<ValueChange>,
    pub layers: Vec<LayerDiff>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ArtifactDiff {
    pub identical: bool,
    pub a: Digest,
    pub b: Digest,
    pub a_media_type: String,
    pub b_media_type: String,
    pub images: Vec<ImageDiff>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
}

/// Compare two artifacts. Images are paired by platform (two single images are paired
/// whatever their platforms).
pub fn diff(a: &Artifact, b: &Artifact) -> Result<ArtifactDiff, ImageError> {
    let (ia, ib) = (a.images(), b.images());
    let platform = |i: &Image| i.config.value.platform().to_string();
    let mut images = Vec::new();
    let (mut only_in_a, mut only_in_b) = (Vec::new(), Vec::new());
    if ia.len() == 1 && ib.len() == 1 {
        images.push(diff_images(ia[0], ib[0])?);
    } else {
        for x in &ia {
            match ib.iter().find(|y| platform(y) == platform(x)) {
                Some(y) => images.push(diff_images(x, y)?),
                None => only_in_a.push(platform(x)),
            }
        }
        for y in &ib {
            if !ia.iter().any(|x| platform(x) == platform(y)) {
                only_in_b.push(platform(y));
            }
        }
    }
    Ok(ArtifactDiff {
        identical: a.digest() == b.digest(),
        a: a.digest(),
        b: b.digest(),
        a_media_type: a.media_type().to_string(),
        b_media_type: b.media_type().to_string(),
        images,
        only_in_a,
        only_in_b,
    })
}

fn diff_images(a: &Image, b: &Image) -> Result<ImageDiff, ImageError> {
    let mut manifest = Vec::new();
    let ma = serde_json::to_value(&a.manifest.value.annotations).expect("json");
    let mb = serde_json::to_value(&b.manifest.value.annotations).expect("json");
    diff_values("annotations", &ma, &mb, &mut manifest);
    if a.manifest_media_type() != b.manifest_media_type() {
        manifest.push(ValueChange {
            field: "mediaType".into(),
            a: Some(Value::from(a.manifest_media_type())),
            b: Some(Value::from(b.manifest_media_type())),
        });
    }
    let mut config = Vec::new();
    let mut ca = serde_json::to_value(&a.config.value).expect("json");
    let mut cb = serde_json::to_value(&b.config.value).expect("json");
    // Layers are compared below, entry by entry; their diff_ids would only repeat that.
    for c in [&mut ca, &mut cb] {
        if let Some(o) = c.as_object_mut() {
            o.remove("rootfs");
        }
    }
    diff_values("", &ca, &cb, &mut config);
    let mut layers = Vec::new();
    let n = a.layers.len().max(b.layers.len());
    for i in 0..n {
        layers.push(match (a.layers.get(i), b.layers.get(i)) {
            (Some(x), Some(y)) if x.descriptor.digest == y.descriptor.digest => LayerDiff::Same {
                index: i,
                digest: x.descriptor.digest.clone(),
            },
            (Some(x), Some(y)) => LayerDiff::Changed {
                index: i,
                a: x.descriptor.digest.clone(),
                b: y.descriptor.digest.clone(),
                entries: diff_entries(&layer_entries(x)?, &layer_entries(y)?),
            },
            (Some(x), None) => LayerDiff::OnlyInA {
                index: i,
                digest: x.descriptor.digest.clone(),
            },
            (None, Some(y)) => LayerDiff::OnlyInB {
                index: i,
                digest: y.descriptor.digest.clone(),
            },
            (None, None) => unreachable!("i < max of both lengths"),
        });
    }
    Ok(ImageDiff {
        platform: a.config.value.platform().to_string(),
        a: a.digest(),
        b: b.digest(),
        manifest,
        config,
        layers,
    })
}

/// Objects are compared key by key; arrays and scalars as whole values.
fn diff_values(path: &str, a: &Value, b: &Value, out: &mut Vec<ValueChange>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_values(&join(k), u, v, out),
                    (u, v) => out.push(ValueChange {
                        field: join(k),
                        a: u.cloned(),
                        b: v.cloned(),
                    }),
                }
            }
        }
        _ if a == b => {}
        _ => out.push(ValueChange {
            field: path.to_string(),
            a: Some(a.clone()),
            b: Some(b.clone()),
        }),
    }
}

/// Every entry of a layer, read in one streaming pass.
pub fn layer_entries(layer: &Layer) -> Result<BTreeMap<String, EntryInfo>, ImageError> {
    let what = format!(
        "layer {} from {}",
        layer.descriptor.digest,
        layer.source.name()
    );
    let reader = layer.source.open(&layer.descriptor.digest)?;
    let mut reader = io::BufReader::new(reader);
    let head = io::BufRead::fill_buf(&mut reader)
        .map_err(io_err(&what))?
        .to_vec();
    let tar_stream: Box<dyn Read> = match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::new(reader).map_err(io_err(&what))?)
        }
        _ => Box::new(reader),
    };
    let bad = |e: io::Error| malformed(&what, format!("is not a readable tar stream: {e}"));
    let mut out = BTreeMap::new();
    let mut ar = tar::Archive::new(tar_stream);
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        let path = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "hardlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        };
        let mode = format!("{:04o}", h.mode().map_err(bad)? & 0o7777);
        let (uid, gid, mtime) = (
            h.uid().map_err(bad)?,
            h.gid().map_err(bad)?,
            h.mtime().map_err(bad)?,
        );
        let size = e.size();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        let mut xattrs = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().map_err(bad)? {
            for ext in exts {
                let ext = ext.map_err(bad)?;
                if let Some(k) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(
                        k.to_string(),
                        String::from_utf8_lossy(ext.value_bytes()).into_owned(),
                    );
                }
            }
        }
        let content = if kind == "file" {
            let mut w = Sha256Writer::new(io::sink());
            io::copy(&mut e, &mut w).map_err(bad)?;
            Some(w.finish().0)
        } else {
            None
        };
        out.insert(
            format!("/{path}"),
            EntryInfo {
                kind,
                mode,
                uid,
                gid,
                mtime,
                size,
                link,
                content,
                xattrs,
            },
        );
    }
    Ok(out)
}

pub fn diff_entries(
    a: &BTreeMap<String, EntryInfo>,
    b: &BTreeMap<String, EntryInfo>,
) -> Vec<EntryChange> {
    let mut out = Vec::new();
    for (p, x) in a {
        match b.get(p) {
            None => out.push(EntryChange::Removed {
                path: p.clone(),
                entry: x.clone(),
            }),
            Some(y) if x != y => {
                let mut fields = Vec::new();
                let mut f = |name: &str, u: String, v: String| {
                    if u != v {
                        fields.push(FieldChange {
                            field: name.into(),
                            a: u,
                            b: v,
                        });
                    }
                };
                f("type", x.kind.into(), y.kind.into());
                f("content", digest_opt(&x.content), digest_opt(&y.content));
                f("size", x.size.to_string(), y.size.to_string());
                f("mode", x.mode.clone(), y.mode.clone());
                f(
                    "owner",
                    format!("{}:{}", x.uid, x.gid),
                    format!("{}:{}", y.uid, y.gid),
                );
                f("mtime", x.mtime.to_string(), y.mtime.to_string());
                f(
                    "link",
                    x.link.clone().unwrap_or_default(),
                    y.link.clone().unwrap_or_default(),
                );
                f(
                    "xattrs",
                    format!("{:?}", x.xattrs),
                    format!("{:?}", y.xattrs),
                );
                out.push(EntryChange::Changed {
                    path: p.clone(),
                    fields,
                });
            }
            Some(_) => {}
        }
    }
    for (p, y) in b {
        if !a.contains_key(p) {
            out.push(EntryChange::Added {
                path: p.clone(),
                entry: y.clone(),
            });
        }
    }
    out.sort_by(|x, y| entry_path(x).cmp(entry_path(y)));
    out
}

fn entry_path(c: &EntryChange) -> &str {
    match c {
        EntryChange::Added { path, .. }
        | EntryChange::Removed { path, .. }
        | EntryChange::Changed { path, .. } => path,
    }
}

fn digest_opt(d: &Option<Digest>) -> String {
    d.as_ref().map(Digest::to_string).unwrap_or_default()
}
