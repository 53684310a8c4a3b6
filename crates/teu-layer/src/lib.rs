//! Deterministic layers: everything between "these files" and "this blob in the store".
//!
//! - [`path`]: layer paths (bytes, no leading `/`, no `..` escaping the root).
//! - [`entry`]: the entry model and [`LayerTree`], which merges entries from many sources,
//!   detects conflicts, adds parent directories and turns repeated inodes into hard links.
//! - [`source`]: entries from a directory tree or a file (`copy`), and from a tarball
//!   (`tars`), with metadata normalized.
//! - [`tar_writer`]: a hand-written ustar/PAX header encoder. The `tar` crate's builder is
//!   not reproducible (sparse detection depends on the file system, symlinks are followed,
//!   a fixed 2006 mtime, GNU long names), so headers are written here, field by field.
//! - [`compress`]: gzip (zlib-rs), zstd and none, compressed as independent segments whose
//!   boundaries depend only on the entries, so output never depends on thread count.
//! - [`pipeline`]: one streaming pass from entries to a stored blob: tar, hash the tar
//!   (diff_id), compress segments in parallel, hash the blob (digest), write, fsync, rename.
//!
//! - [`estargz`]: eStargz, teu's own writer of the lazily pullable `tar+gzip` layout
//!   (members per file chunk, the TOC and footer), ordering and landmarks for prefetch,
//!   and a random-access reader of the TOC for inspection and tests.
//! - [`cache`]: the layer cache (keys over headers and content hashes, the stat cache).
//!
//! Everything here is teu's own craft; the crate doc of each module says why.

pub mod cache;
pub mod compress;
pub mod entry;
pub mod estargz;
pub mod path;
pub mod pipeline;
pub mod plan;
pub mod sha;
pub mod source;
pub mod tar_writer;

pub use compress::{Compression, SegmentPolicy};
pub use entry::{Content, Defaults, Entry, Kind, LayerError, LayerTree, Meta, Origin, Priority};
pub use pipeline::{build_layer, build_layer_from_tar, BuiltLayer, LayerOptions, PipelineError};

/// Bumped whenever the bytes teu writes for the same inputs change (header layout,
/// segmenting rule, encoder settings). Part of every layer cache key.
pub const LAYER_FORMAT_VERSION: u32 = 2;
