//! Any image reference to an [`Artifact`]: the one entry point commands such as `teu diff`
//! use to read images, whatever their transport.

use teu_oci::Reference;

use crate::archive_source::{read_docker_archive, read_oci_archive};
use crate::image::Artifact;
use crate::{invalid, layout, ImageError};

/// Read the image or index `r` names, every platform of it; `client` serves registry
/// references.
pub fn read_artifact(
    r: &Reference,
    client: Option<&teu_registry::Client>,
) -> Result<Artifact, ImageError> {
    match r {
        Reference::Layout { path, tag } => layout::read_artifact(path, tag.as_deref()),
        Reference::OciArchive { path, tag } => read_oci_archive(path, tag.as_deref()),
        Reference::DockerArchive { path, name } => {
            read_docker_archive(path, name.as_ref().map(|n| n.familiar()).as_deref())
        }
        Reference::Registry(reg) => match client {
            Some(c) => {
                let (source, desc) = crate::registry::open_top(c, reg)?;
                crate::resolve::artifact(source, &desc)
            }
            None => Err(invalid(r.to_string(), "no registry client was configured")),
        },
        Reference::Scratch => Err(invalid(
            "scratch",
            "scratch is an empty base, not an image to read",
        )),
    }
}
