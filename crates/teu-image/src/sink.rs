//! Writing an image to an output reference. Every output is all-or-nothing: archives are
//! written to a temporary file and renamed; a new layout directory is built under a
//! temporary name; an existing layout only gains complete blobs and a new `index.json`.

use std::io::BufWriter;

use serde::Serialize;
use teu_oci::Reference;
use teu_store::atomic::AtomicFile;

use crate::archive::{write_docker_archive, write_oci_archive};
use crate::image::Artifact;
use crate::layout::write_artifact;
use crate::{invalid, io_err, ImageError};

/// What one output received.
#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    pub output: String,
    pub bytes_written: u64,
}

/// The tag a layout or OCI archive output gets when the reference names none.
pub const DEFAULT_TAG: &str = "latest";

/// Refuse, before any work, an output teu cannot write. (Registry outputs are pushed by
/// the caller through [`crate::push`], which needs a client.)
pub fn check_output(output: &Reference) -> Result<(), ImageError> {
    match output {
        Reference::Scratch => Err(invalid(
            "output scratch",
            "scratch is a base, not an output",
        )),
        _ => Ok(()),
    }
}

pub fn write_output(output: &Reference, artifact: &Artifact) -> Result<OutputReport, ImageError> {
    check_output(output)?;
    let bytes_written = match output {
        Reference::Layout { path, tag } => {
            write_artifact(path, Some(tag.as_deref().unwrap_or(DEFAULT_TAG)), artifact)?
        }
        Reference::OciArchive { path, tag } => {
            let mut f = AtomicFile::create(path).map_err(io_err(path.display()))?;
            let n = {
                let mut w = BufWriter::with_capacity(1 << 20, &mut f);
                let n = write_oci_archive(
                    &mut w,
                    Some(tag.as_deref().unwrap_or(DEFAULT_TAG)),
                    artifact,
                )?;
                w.into_inner()
                    .map_err(|e| io_err(path.display())(e.into_error()))?;
                n
            };
            f.commit().map_err(io_err(path.display()))?;
            n
        }
        Reference::DockerArchive { path, name } => {
            let mut f = AtomicFile::create(path).map_err(io_err(path.display()))?;
            let n = {
                let mut w = BufWriter::with_capacity(1 << 20, &mut f);
                let n = write_docker_archive(&mut w, name.as_ref(), artifact)?;
                w.into_inner()
                    .map_err(|e| io_err(path.display())(e.into_error()))?;
                n
            };
            f.commit().map_err(io_err(path.display()))?;
            n
        }
        Reference::Registry(r) => {
            return Err(invalid(
                format!("output {r}"),
                "registry outputs are pushed with teu_image::push, not written here",
            ))
        }
        Reference::Scratch => unreachable!("refused by check_output"),
    };
    Ok(OutputReport {
        output: output.to_string(),
        bytes_written,
    })
}
