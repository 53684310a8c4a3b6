//! The serde shape of `teu.toml` and its conversion into a validated [`Spec`].

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use globset::GlobBuilder;
use serde::Deserialize;
use teu_layer::Compression;
use teu_oci::{Platform, Reference};
use toml::Spanned;

use crate::{
    check_dest, check_placeholders, exclude_set, parse_mode, ConfigSpec, Format, Item, LayerSpec,
    MetaOverride, Spec, SpecError,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    image: Image,
    #[serde(default)]
    config: Config,
    #[serde(default, rename = "layer")]
    layers: Vec<Layer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Image {
    base: Option<Spanned<String>>,
    compression: Option<Spanned<String>>,
    compression_level: Option<Spanned<i64>>,
    estargz_chunk_size: Option<Spanned<u64>>,
    platform: Option<Spanned<String>>,
    platforms: Option<Spanned<Vec<String>>>,
    format: Option<Spanned<String>>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, String>,
    workdir: Option<String>,
    user: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    exposed_ports: Vec<Spanned<String>>,
    #[serde(default)]
    volumes: Vec<String>,
    stop_signal: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    name: Option<String>,
    compression: Option<Spanned<String>>,
    compression_level: Option<Spanned<i64>>,
    estargz_chunk_size: Option<Spanned<u64>>,
    /// eStargz: files to put first, for a lazy snapshotter to prefetch.
    prefetch: Option<Spanned<Vec<String>>>,
    /// Entries added only for one platform: `[layer.per_platform."linux/arm64"]`.
    #[serde(default)]
    per_platform: BTreeMap<Spanned<String>, PlatformItems>,
    #[serde(default)]
    copy: Vec<Spanned<Copy>>,
    #[serde(default)]
    symlinks: Vec<Spanned<Symlink>>,
    #[serde(default)]
    dirs: Vec<Spanned<Dir>>,
    #[serde(default)]
    tars: Vec<Spanned<Tar>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlatformItems {
    #[serde(default)]
    copy: Vec<Spanned<Copy>>,
    #[serde(default)]
    symlinks: Vec<Spanned<Symlink>>,
    #[serde(default)]
    dirs: Vec<Spanned<Dir>>,
    #[serde(default)]
    tars: Vec<Spanned<Tar>>,
    #[serde(default)]
    remove: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Copy {
    src: Spanned<String>,
    dest: Spanned<String>,
    mode: Option<Spanned<String>>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    follow_symlinks: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Symlink {
    path: Spanned<String>,
    target: String,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Dir {
    path: Spanned<String>,
    mode: Option<Spanned<String>>,
    uid: Option<u64>,
    gid: Option<u64>,
    mtime: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Tar {
    src: Spanned<String>,
    dest: Option<Spanned<String>>,
    #[serde(default = "yes")]
    normalize: bool,
}

fn yes() -> bool {
    true
}

struct Ctx<'a> {
    text: &'a str,
    label: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: Range<usize>) -> String {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("{}:{line}:{col}", self.label)
    }

    fn err(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> SpecError {
        SpecError {
            at: self.at(span),
            key: Some(key.into()),
            message: message.into(),
        }
    }

    fn origin(&self, span: Range<usize>, key: &str) -> teu_layer::Origin {
        Arc::from(format!("{}: {key}", self.at(span)))
    }

    fn mode(&self, m: &Option<Spanned<String>>, key: &str) -> Result<Option<u32>, SpecError> {
        m.as_ref()
            .map(|m| {
                parse_mode(m.get_ref()).map_err(|e| self.err(m.span(), format!("{key}.mode"), e))
            })
            .transpose()
    }

    fn dest(&self, d: &Spanned<String>, key: &str, allow_root: bool) -> Result<String, SpecError> {
        if d.get_ref().is_empty() {
            let hint = if allow_root {
                " (write \"/\" for the root)"
            } else {
                ""
            };
            return Err(self.err(d.span(), key, format!("may not be empty{hint}")));
        }
        check_dest(d.get_ref(), allow_root).map_err(|e| self.err(d.span(), key, e))?;
        Ok(d.get_ref().clone())
    }

    /// A source path: never empty (an empty `src` would be the spec's whole directory,
    /// earlier outputs included).
    fn src(&self, s: &Spanned<String>, key: &str) -> Result<(), SpecError> {
        if s.get_ref().is_empty() {
            return Err(self.err(
                s.span(),
                key,
                "may not be empty (write \".\" to mean the spec's directory)",
            ));
        }
        check_placeholders(s.get_ref()).map_err(|e| self.err(s.span(), key, e))
    }

    /// Validate the entries of a layer (or of one platform's table in it).
    fn items(
        &self,
        raw: PlatformItems,
        lk: &str,
        dir: &Path,
        first_span: &mut Option<Range<usize>>,
    ) -> Result<Vec<Item>, SpecError> {
        let cx = self;
        let mut items = Vec::new();
        for (i, c) in raw.copy.into_iter().enumerate() {
            let key = format!("{lk}.copy[{i}]");
            let span = c.span();
            first_span.get_or_insert(span.clone());
            let c = c.into_inner();
            let exclude = exclude_set(&c.exclude)
                .map_err(|e| cx.err(span.clone(), format!("{key}.exclude"), e))?;
            cx.src(&c.src, &format!("{key}.src"))?;
            items.push(Item::Copy {
                src: teu_layer::source::resolve(dir, c.src.get_ref()),
                dest: cx.dest(&c.dest, &format!("{key}.dest"), true)?,
                meta: MetaOverride {
                    mode: cx.mode(&c.mode, &key)?,
                    uid: c.uid,
                    gid: c.gid,
                    mtime: c.mtime,
                },
                exclude,
                follow_symlinks: c.follow_symlinks,
                origin: cx.origin(c.src.span(), &format!("{key}.src ({:?})", c.src.get_ref())),
            });
        }
        for (i, s) in raw.symlinks.into_iter().enumerate() {
            let key = format!("{lk}.symlinks[{i}]");
            first_span.get_or_insert(s.span());
            let s = s.into_inner();
            if s.target.is_empty() {
                return Err(cx.err(
                    s.path.span(),
                    format!("{key}.target"),
                    "a symlink needs a non-empty target",
                ));
            }
            items.push(Item::Symlink {
                path: cx.dest(&s.path, &format!("{key}.path"), false)?,
                target: s.target,
                meta: MetaOverride {
                    mode: None,
                    uid: s.uid,
                    gid: s.gid,
                    mtime: s.mtime,
                },
                origin: cx.origin(s.path.span(), &format!("{key}.path")),
            });
        }
        for (i, d) in raw.dirs.into_iter().enumerate() {
            let key = format!("{lk}.dirs[{i}]");
            first_span.get_or_insert(d.span());
            let d = d.into_inner();
            items.push(Item::Dir {
                path: cx.dest(&d.path, &format!("{key}.path"), false)?,
                meta: MetaOverride {
                    mode: cx.mode(&d.mode, &key)?,
                    uid: d.uid,
                    gid: d.gid,
                    mtime: d.mtime,
                },
                origin: cx.origin(d.path.span(), &format!("{key}.path")),
            });
        }
        for (i, t) in raw.tars.into_iter().enumerate() {
            let key = format!("{lk}.tars[{i}]");
            first_span.get_or_insert(t.span());
            let t = t.into_inner();
            cx.src(&t.src, &format!("{key}.src"))?;
            let dest = match &t.dest {
                Some(d) => {
                    let dest = cx.dest(d, &format!("{key}.dest"), true)?;
                    let is_root =
                        teu_layer::path::normalize_dir(dest.as_bytes()).is_ok_and(|p| p.is_empty());
                    if !t.normalize && !is_root {
                        return Err(cx.err(
                            d.span(),
                            format!("{key}.dest"),
                            "a tarball with normalize = false is used byte for byte, so its entries cannot be moved under dest; remove dest or set normalize = true",
                        ));
                    }
                    dest
                }
                None => "/".to_string(),
            };
            items.push(Item::Tar {
                src: teu_layer::source::resolve(dir, t.src.get_ref()),
                dest,
                normalize: t.normalize,
                origin: cx.origin(t.src.span(), &format!("{key}.src ({:?})", t.src.get_ref())),
            });
        }
        for (i, r) in raw.remove.into_iter().enumerate() {
            let key = format!("{lk}.remove[{i}]");
            first_span.get_or_insert(r.span());
            items.push(Item::Remove {
                path: cx.dest(&r, &key, false)?,
                origin: cx.origin(r.span(), &key),
            });
        }
        Ok(items)
    }

    /// `estargz_chunk_size` applied to `c`, which must be eStargz.
    fn chunk(
        &self,
        c: Compression,
        chunk: &Spanned<u64>,
        key: &str,
    ) -> Result<Compression, SpecError> {
        let key = format!("{key}.estargz_chunk_size");
        if c.estargz_chunk().is_none() {
            return Err(self.err(
                chunk.span(),
                &key,
                format!("only eStargz layers have chunks; this one is {c} (set compression = \"estargz\")"),
            ));
        }
        c.with_chunk_size(*chunk.get_ref())
            .map_err(|e| self.err(chunk.span(), &key, e.to_string()))
    }

    /// A level without an algorithm keeps `default_name` (the image's algorithm).
    fn compression(
        &self,
        name: &Option<Spanned<String>>,
        level: &Option<Spanned<i64>>,
        key: &str,
        default_name: &str,
    ) -> Result<Option<Compression>, SpecError> {
        match (name, level) {
            (None, None) => Ok(None),
            (name, level) => {
                let n = name.as_ref().map_or(default_name, |n| n.get_ref().as_str());
                let span = name
                    .as_ref()
                    .map(|n| n.span())
                    .or_else(|| level.as_ref().map(|l| l.span()))
                    .unwrap_or(0..0);
                Compression::new(n, level.as_ref().map(|l| *l.get_ref()))
                    .map(Some)
                    .map_err(|e| self.err(span, format!("{key}.compression"), e.to_string()))
            }
        }
    }
}

pub(crate) fn parse(text: &str, label: &str, dir: &Path) -> Result<Spec, SpecError> {
    let cx = Ctx { text, label };
    let file: File = toml::from_str(text).map_err(|e| SpecError {
        at: cx.at(e.span().unwrap_or(0..0)),
        key: None,
        message: e.message().trim_end().to_string(),
    })?;

    let mut spec = Spec::empty(dir, label);
    if let Some(base) = &file.image.base {
        let r: Reference = base
            .get_ref()
            .parse()
            .map_err(|e: teu_oci::ReferenceError| {
                cx.err(base.span(), "image.base", e.to_string())
            })?;
        spec.base = Some((r, cx.origin(base.span(), "image.base")));
    }
    spec.compression = cx
        .compression(
            &file.image.compression,
            &file.image.compression_level,
            "image",
            "gzip",
        )?
        .unwrap_or_default();
    if let Some(c) = &file.image.estargz_chunk_size {
        spec.compression = cx.chunk(spec.compression, c, "image")?;
    }
    if let (Some(_), Some(ps)) = (&file.image.platform, &file.image.platforms) {
        return Err(cx.err(
            ps.span(),
            "image.platforms",
            "give either platform or platforms, not both",
        ));
    }
    if let Some(p) = &file.image.platform {
        let platform: Platform = p.get_ref().parse().map_err(|e: teu_oci::PlatformError| {
            cx.err(p.span(), "image.platform", e.to_string())
        })?;
        spec.platforms = vec![platform];
    }
    if let Some(ps) = &file.image.platforms {
        let mut list = Vec::new();
        for p in ps.get_ref() {
            let platform: Platform = p.parse().map_err(|e: teu_oci::PlatformError| {
                cx.err(ps.span(), "image.platforms", e.to_string())
            })?;
            if list.contains(&platform) {
                return Err(cx.err(
                    ps.span(),
                    "image.platforms",
                    format!("{platform} is listed twice"),
                ));
            }
            list.push(platform);
        }
        if list.is_empty() {
            return Err(cx.err(ps.span(), "image.platforms", "the list is empty"));
        }
        spec.platforms = list;
        spec.multi_platform = true;
    }
    if let Some(f) = &file.image.format {
        spec.format = match f.get_ref().as_str() {
            "oci" => Format::Oci,
            "docker" => Format::Docker,
            other => {
                return Err(cx.err(
                    f.span(),
                    "image.format",
                    format!("unknown format {other:?} (expected oci or docker)"),
                ))
            }
        };
    }
    spec.annotations = file.image.annotations;

    let c = file.config;
    let mut env = BTreeMap::new();
    for (k, v) in c.env {
        if k.get_ref().is_empty() || k.get_ref().contains(['=', '\0']) {
            return Err(cx.err(
                k.span(),
                "config.env",
                format!(
                    "variable name {:?} may not be empty or contain '=' or a NUL byte",
                    k.get_ref()
                ),
            ));
        }
        if v.contains('\0') {
            return Err(cx.err(
                k.span(),
                format!("config.env.{}", k.get_ref()),
                "the value may not contain a NUL byte (a process environment cannot hold one)",
            ));
        }
        env.insert(k.into_inner(), v);
    }
    let mut exposed_ports = Vec::new();
    for p in c.exposed_ports {
        check_port(p.get_ref()).map_err(|e| cx.err(p.span(), "config.exposed_ports", e))?;
        exposed_ports.push(p.into_inner());
    }
    spec.config = ConfigSpec {
        entrypoint: c.entrypoint,
        cmd: c.cmd,
        env,
        workdir: c.workdir,
        user: c.user,
        labels: c.labels,
        exposed_ports,
        volumes: c.volumes,
        stop_signal: c.stop_signal,
    };

    for (li, layer) in file.layers.into_iter().enumerate() {
        let lk = format!("layer[{li}]");
        let name = layer.name.clone().unwrap_or_else(|| format!("layer-{li}"));
        let mut compression = cx.compression(
            &layer.compression,
            &layer.compression_level,
            &lk,
            spec.compression.name(),
        )?;
        // A layer's eStargz keeps the image's chunk size unless it sets its own.
        if let (Some(c), Some(chunk)) = (&mut compression, spec.compression.estargz_chunk()) {
            *c = c
                .with_chunk_size(chunk)
                .expect("the image's chunk size was checked");
        }
        if let Some(chunk) = &layer.estargz_chunk_size {
            let c = compression.unwrap_or(spec.compression);
            compression = Some(cx.chunk(c, chunk, &lk)?);
        }
        let mut prefetch = Vec::new();
        if let Some(p) = &layer.prefetch {
            let key = format!("{lk}.prefetch");
            // Only eStargz layers are reordered; another compression (say, `--compression
            // gzip` over an eStargz spec) keeps path order, so this is not an error.
            for pattern in p.get_ref() {
                if !pattern.starts_with('/') {
                    return Err(cx.err(
                        p.span(),
                        &key,
                        format!("pattern {pattern:?} must be an absolute path in the image, such as \"/app/bin/server\" or \"/app/lib/**\""),
                    ));
                }
                GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        cx.err(p.span(), &key, format!("pattern {pattern:?}: {}", e.kind()))
                    })?;
            }
            prefetch = p.get_ref().clone();
        }
        let mut first_span = None;
        let common = PlatformItems {
            copy: layer.copy,
            symlinks: layer.symlinks,
            dirs: layer.dirs,
            tars: layer.tars,
            remove: layer.remove,
        };
        let items = cx.items(common, &lk, dir, &mut first_span)?;
        let mut per_platform = BTreeMap::new();
        for (key, table) in layer.per_platform {
            let pk = format!("{lk}.per_platform.{:?}", key.get_ref());
            let platform: Platform = key
                .get_ref()
                .parse()
                .map_err(|e: teu_oci::PlatformError| cx.err(key.span(), &pk, e.to_string()))?;
            if !spec.platforms.is_empty() && !spec.platforms.contains(&platform) {
                return Err(cx.err(
                    key.span(),
                    &pk,
                    format!("{platform} is not one of image.platforms"),
                ));
            }
            per_platform.insert(platform, cx.items(table, &pk, dir, &mut first_span)?);
        }
        check_verbatim_tars(&items, &per_platform)?;
        spec.layers.push(LayerSpec {
            name,
            compression,
            prefetch,
            items,
            per_platform,
            origin: cx.origin(first_span.unwrap_or(0..0), &lk),
        });
    }
    Ok(spec)
}

/// A tarball with `normalize = false` is the layer, byte for byte: for every platform it
/// must be the layer's only entry.
fn check_verbatim_tars(
    items: &[Item],
    per_platform: &BTreeMap<Platform, Vec<Item>>,
) -> Result<(), SpecError> {
    let verbatim = |i: &Item| {
        matches!(
            i,
            Item::Tar {
                normalize: false,
                ..
            }
        )
    };
    let lone = |list: &[Item]| list.len() == 1 && verbatim(&list[0]);
    let offending = if items.iter().any(verbatim) {
        (!(lone(items) && per_platform.is_empty())).then(|| items.iter().find(|i| verbatim(i)))
    } else {
        per_platform
            .values()
            .find(|list| list.iter().any(verbatim) && !(items.is_empty() && lone(list)))
            .map(|list| list.iter().find(|i| verbatim(i)))
    };
    match offending.flatten() {
        None => Ok(()),
        Some(i) => Err(SpecError {
            at: i.origin().to_string(),
            key: None,
            message: "a tarball with normalize = false is used byte for byte as its layer, so it must be the layer's only content (for every platform); put the other entries in another [[layer]]".into(),
        }),
    }
}

/// `8080`, `8080/tcp`, `53/udp`, `132/sctp`.
pub fn check_port(p: &str) -> Result<(), String> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok = port.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if ok {
        Ok(())
    } else {
        Err(format!("port {p:?} is not of the form PORT[/tcp|udp|sctp]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[image]
base = "scratch"            # or "oci:DIR[:TAG]"
compression = "gzip"       # "gzip" (default) | "zstd" | "none"

[config]
entrypoint = ["/app/bin/hello"]
cmd = ["--port", "8080"]
env = { GREETING = "hi" }
workdir = "/app"
user = "65532:65532"
labels = { "org.opencontainers.image.source" = "https://example.com/repo" }
exposed_ports = ["8080/tcp"]
volumes = ["/data"]
stop_signal = "SIGTERM"

[[layer]]
name = "app"
copy = [
  { src = "bin/hello", dest = "/app/bin/hello", mode = "0755" },
  { src = "static/", dest = "/app/static/", exclude = ["*.map"] },
]
symlinks = [{ path = "/usr/local/bin/hello", target = "/app/bin/hello" }]
dirs = [{ path = "/var/cache/app", mode = "0700", uid = 65532, gid = 65532 }]
tars = [{ src = "vendor.tar.gz", dest = "/" }]
remove = ["/etc/motd"]      # whiteouts for paths of the base
"#;

    fn parse_err(text: &str) -> String {
        parse(text, "teu.toml", Path::new("/spec"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_issue_example_parses_unchanged() {
        let spec = parse(EXAMPLE, "teu.toml", Path::new("/spec")).unwrap();
        assert_eq!(spec.base.as_ref().unwrap().0, Reference::Scratch);
        assert_eq!(spec.config.env["GREETING"], "hi");
        assert_eq!(spec.layers.len(), 1);
        assert_eq!(spec.layers[0].items.len(), 6);
        match &spec.layers[0].items[0] {
            Item::Copy {
                src, meta, origin, ..
            } => {
                assert_eq!(src, Path::new("/spec/bin/hello"));
                assert_eq!(meta.mode, Some(0o755));
                assert!(
                    origin.starts_with("teu.toml:20:11: layer[0].copy[0].src"),
                    "{origin}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_keys_are_errors_with_a_line() {
        let e = parse_err("[image]\nbase = \"scratch\"\ncompresion = \"zstd\"\n");
        assert!(e.starts_with("teu.toml:3:1: "), "{e}");
        assert!(e.contains("unknown field `compresion`"), "{e}");
        let e = parse_err("[[layer]]\ncopy = [{ src = \"a\", dest = \"/a\", mdoe = \"0644\" }]\n");
        assert!(e.contains("teu.toml:2:") && e.contains("mdoe"), "{e}");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let e = parse_err("[[layer]]\ncopy = [{ src = \"a\", dest = \"/a\", mode = \"0999\" }]\n");
        assert!(
            e.starts_with("teu.toml:2:42: layer[0].copy[0].mode: mode \"0999\""),
            "{e}"
        );
        let e = parse_err("[[layer]]\ncopy = [{ src = \"a\", dest = \"../../etc/x\" }]\n");
        assert!(
            e.starts_with("teu.toml:2:29: layer[0].copy[0].dest:") && e.contains("escapes"),
            "{e}"
        );
        let e = parse_err("[image]\nbase = \"Not A Ref\"\n");
        assert!(e.starts_with("teu.toml:2:8: image.base:"), "{e}");
        let e = parse_err("[image]\ncompression = \"lz4\"\n");
        assert!(e.contains("image.compression") && e.contains("lz4"), "{e}");
        let e = parse_err("[config]\nexposed_ports = [\"http\"]\n");
        assert!(e.contains("config.exposed_ports"), "{e}");
    }

    #[test]
    fn raw_tars_must_be_alone() {
        let e = parse_err(
            "[[layer]]\ntars = [{ src = \"a.tar\", normalize = false }]\nremove = [\"/x\"]\n",
        );
        assert!(e.contains("normalize = false"), "{e}");
    }

    #[test]
    fn a_layer_level_alone_keeps_the_image_algorithm() {
        let spec = parse(
            "[image]\ncompression = \"zstd\"\n[[layer]]\ncompression_level = 9\n",
            "teu.toml",
            Path::new("/s"),
        )
        .unwrap();
        assert_eq!(
            spec.layers[0].compression,
            Some(Compression::Zstd { level: 9 })
        );
    }

    #[test]
    fn verbatim_tarballs_may_stand_alone_per_platform() {
        let ok = "[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n[[layer]]\n[layer.per_platform.\"linux/amd64\"]\ntars = [{ src = \"a.tar\", normalize = false }]\n[layer.per_platform.\"linux/arm64\"]\ntars = [{ src = \"b.tar\", normalize = false }]\n";
        parse(ok, "teu.toml", Path::new("/s")).unwrap();
        let mixed = "[[layer]]\ndirs = [{ path = \"/x\" }]\n[layer.per_platform.\"linux/amd64\"]\ntars = [{ src = \"a.tar\", normalize = false }]\n";
        assert!(parse_err(mixed).contains("normalize = false"));
        let dest = "[[layer]]\ntars = [{ src = \"a.tar\", dest = \"/opt\", normalize = false }]\n";
        let e = parse_err(dest);
        assert!(
            e.contains("layer[0].tars[0].dest") && e.contains("cannot be moved"),
            "{e}"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert_eq!(parse_mode("0o644"), Ok(0o644));
        assert!(parse_mode("rwx").is_err());
        assert!(parse_mode("17777").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn estargz_keys_are_parsed_and_checked() {
        let spec = parse(
            "[image]\ncompression = \"estargz\"\nestargz_chunk_size = 65536\n\
             [[layer]]\nprefetch = [\"/app/bin/server\", \"/app/lib/**\"]\n\
             [[layer]]\ncompression_level = 9\n\
             [[layer]]\nestargz_chunk_size = 8192\n",
            "teu.toml",
            Path::new("/spec"),
        )
        .unwrap();
        assert_eq!(
            spec.compression,
            Compression::Estargz {
                level: 6,
                chunk: 65536
            }
        );
        assert_eq!(spec.layers[0].prefetch, ["/app/bin/server", "/app/lib/**"]);
        assert_eq!(
            spec.layers[1].compression,
            Some(Compression::Estargz {
                level: 9,
                chunk: 65536
            }),
            "a level alone keeps the image's algorithm and chunk size"
        );
        assert_eq!(
            spec.layers[2].compression,
            Some(Compression::Estargz {
                level: 6,
                chunk: 8192
            })
        );
        let e = parse_err("[[layer]]\nestargz_chunk_size = 65536\n");
        assert!(
            e.contains("layer[0].estargz_chunk_size") && e.contains("gzip"),
            "{e}"
        );
        let e = parse_err("[image]\ncompression = \"estargz\"\nestargz_chunk_size = 10\n");
        assert!(e.contains("out of range"), "{e}");
        let e = parse_err("[image]\ncompression = \"estargz\"\nestargz_chunk_size = 67108865\n");
        assert!(e.contains("out of range") && e.contains("64 MiB"), "{e}");
        let e = parse_err("[[layer]]\nprefetch = [\"app/bin\"]\n");
        assert!(
            e.contains("layer[0].prefetch") && e.contains("absolute"),
            "{e}"
        );
        let e = parse_err("[[layer]]\nprefetch = [\"/app/[\"]\n");
        assert!(
            e.contains("layer[0].prefetch") && e.contains("/app/["),
            "{e}"
        );
    }
}
