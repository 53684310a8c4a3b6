//! Bases: what the spec builds on, resolved shallowly (the index, the manifest and the
//! config; never a layer) through whatever transport its reference names, so a layout,
//! an OCI or docker archive and a registry image are all bases. `teu.lock` pins them.

use teu_image::transport::{open_source, Top};
use teu_image::{select, Image};
use teu_oci::{Descriptor, Platform};
use teu_spec::lock::{LockedBase, LockedPlatform, Lockfile};
use teu_spec::Spec;

use crate::options::BaseOptions;
use crate::{platforms_of, BuildError};

/// A platform's base image, and the name to record for it in the image built on it.
pub struct Base {
    pub image: Image,
    /// `org.opencontainers.image.base.name`: only registry bases have a name that means
    /// the same on every machine (a layout's path would make the digest depend on where
    /// the build ran).
    pub name: Option<String>,
}

type BasesFor = (Option<LockedBase>, Vec<(Platform, Option<Base>)>);

/// Where a base's top document is now: its source and the descriptor its reference names.
struct BaseRoot {
    /// The reference as the spec writes it: the key in `teu.lock`.
    reference: String,
    origin: String,
    top: Top,
    name: Option<String>,
    pinned: bool,
}

fn base_root(spec: &Spec, opts: &BaseOptions) -> Result<Option<BaseRoot>, BuildError> {
    let Some((reference, origin)) = &spec.base else {
        return Ok(None);
    };
    if reference.is_scratch() {
        return Ok(None);
    }
    let base_err = |source| BuildError::Base {
        origin: origin.to_string(),
        base: reference.to_string(),
        source: Box::new(source),
    };
    // A local base is relative to the spec's directory, like every other path in it.
    let resolved = reference.clone().relative_to(&spec.dir);
    let source = open_source(&resolved, &opts.transport).map_err(base_err)?;
    let top = source.open().map_err(base_err)?;
    Ok(Some(BaseRoot {
        reference: reference.to_string(),
        origin: origin.to_string(),
        top,
        name: source.base_name(),
        pinned: source.is_pinned(),
    }))
}

/// Resolve the base for every platform, honouring the lock: with a lock entry the base is
/// read at the locked digest (a moved tag is a warning, or an error with `--locked`).
/// Returns the resolution in lock form and, for each platform to build, its base image.
/// When the user named no platform and the base is a single image, the platform is the
/// base's (not the host's), so placeholders and per-platform entries match the base.
pub(crate) fn resolve_bases(
    spec: &Spec,
    platforms: &[Platform],
    opts: &BaseOptions,
    warnings: &mut Vec<String>,
) -> Result<BasesFor, BuildError> {
    let Some(root) = base_root(spec, opts)? else {
        return Ok((None, platforms.iter().map(|p| (p.clone(), None)).collect()));
    };
    let locked = opts.lock.as_ref().and_then(|l| l.base(&root.reference));
    if !root.pinned && locked.is_none() {
        warnings.push(format!(
            "{}: base {} is not pinned by digest (nor by teu.lock); the build changes when the tag moves",
            root.origin, root.reference
        ));
    }
    let lock_err = |message: String| BuildError::Lock {
        origin: root.origin.clone(),
        message,
    };
    let desc = match locked {
        None if opts.locked => {
            return Err(lock_err(format!(
                "teu.lock has no entry for base {}; run teu lock",
                root.reference
            )))
        }
        None => root.top.descriptor.clone(),
        Some(l) if l.digest == root.top.descriptor.digest => root.top.descriptor.clone(),
        Some(l) => {
            let moved = format!(
                "base {} now resolves to {}, but teu.lock pins {}",
                root.reference, root.top.descriptor.digest, l.digest
            );
            if opts.locked {
                return Err(lock_err(format!(
                    "{moved}; run teu lock --update to accept it"
                )));
            }
            warnings.push(format!(
                "{moved}; building on the locked digest (teu lock --update moves it)"
            ));
            Descriptor::new(&l.media_type, l.digest.clone(), l.size)
        }
    };
    let mut images = Vec::new();
    let mut entry = LockedBase {
        reference: root.reference.clone(),
        digest: desc.digest.clone(),
        media_type: desc.media_type.clone(),
        size: desc.size,
        platforms: Vec::new(),
    };
    let explicit = !opts.platforms.is_empty() || !spec.platforms.is_empty();
    for platform in platforms {
        let image =
            select::image_for(root.top.blobs.clone(), &desc, platform).map_err(|source| {
                BuildError::Base {
                    origin: root.origin.clone(),
                    base: root.reference.clone(),
                    source: Box::new(source),
                }
            })?;
        // A single-platform base serves only its own platform. When the user named none,
        // the image simply takes the base's; when they did, a mismatch is an error.
        let has = image.config.value.platform();
        let platform = if has.satisfies(platform) {
            platform.clone()
        } else if explicit {
            return Err(BuildError::Unsupported {
                origin: root.origin.clone(),
                message: format!(
                "base {} is a single image for {has}, not an index; it has no image for {platform}",
                root.reference
                ),
            });
        } else {
            Platform::new(&has.os, &has.architecture, has.variant.as_deref())
        };
        let platform = &platform;
        let got = LockedPlatform {
            platform: platform.to_string(),
            manifest: image.digest(),
            config: image.config.digest(),
        };
        if opts.locked {
            match locked.and_then(|l| l.platform(&got.platform)) {
                Some(want) if *want == got => {}
                Some(want) => {
                    return Err(lock_err(format!(
                        "base {} for {}: teu.lock pins manifest {}, the base has {}; run teu lock --update",
                        root.reference, got.platform, want.manifest, got.manifest
                    )))
                }
                None => {
                    return Err(lock_err(format!(
                        "teu.lock has no {} entry for base {}; run teu lock",
                        got.platform, root.reference
                    )))
                }
            }
        }
        entry.platforms.push(got);
        images.push((
            platform.clone(),
            Some(Base {
                image,
                name: root.name.clone(),
            }),
        ));
    }
    Ok((Some(entry), images))
}

/// Resolve the base without building anything, for `teu lock`. With `update` false, a base
/// already in `lock` stays at its locked digest (missing platforms are added).
pub fn lock_bases(spec: &Spec, opts: &BaseOptions, update: bool) -> Result<Lockfile, BuildError> {
    let platforms = platforms_of(spec, opts);
    let o = BaseOptions {
        lock: if update { None } else { opts.lock.clone() },
        locked: false,
        ..opts.clone()
    };
    let (base, _) = resolve_bases(spec, &platforms, &o, &mut Vec::new())?;
    Ok(Lockfile {
        version: teu_spec::lock::LOCK_VERSION,
        bases: base.into_iter().collect(),
    })
}
