//! Any image reference to an [`Artifact`]: the one entry point commands such as `teu diff`
//! use to read images, whatever their transport.

use teu_oci::Reference;

use crate::archive_source::{read_docker_archive, read_oci_archive};
use crate::image::Artifact;
use crate::{invalid, layout, ImageError};

pub fn read_artifact(r: &Reference) -> Result<Artifact, ImageError> {
    match r {
        Reference::Layout { path, tag } => layout::read_artifact(path, tag.as_deref()),
        Reference::OciArchive { path, tag } => read_oci_archive(path, tag.as_deref()),
        Reference::DockerArchive { path, name } => {
            read_docker_archive(path, name.as_ref().map(|n| n.familiar()).as_deref())
        }
        Reference::Registry(_) => Err(invalid(
            r.to_string(),
            "reading from a registry is not supported yet",
        )),
        Reference::Scratch => Err(invalid(
            "scratch",
            "scratch is an empty base, not an image to read",
        )),
    }
}
