//! Image references with skopeo-style transports:
//! `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME:TAG]`,
//! `docker://HOST/REPO[:TAG|@DIGEST]`, a bare `HOST/REPO:TAG`, and `scratch`; and the
//! local engines: `docker-daemon:NAME[:TAG]`, `podman:NAME[:TAG]` (skopeo's
//! `containers-storage:NAME[:TAG]` is the same) and `containerd:[NAMESPACE/]NAME[:TAG]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Digest;

/// Where an image lives (or is to be written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    /// The empty base image.
    Scratch,
    /// An OCI image layout directory, with an optional tag (`ref.name`).
    Layout { path: PathBuf, tag: Option<String> },
    /// A tar archive of an OCI image layout.
    OciArchive { path: PathBuf, tag: Option<String> },
    /// A `docker save` archive, with an optional `NAME:TAG` for `RepoTags`.
    DockerArchive {
        path: PathBuf,
        name: Option<RegistryRef>,
    },
    /// An image in a registry.
    Registry(RegistryRef),
    /// An image in a Docker Engine (`docker-daemon:NAME[:TAG]`).
    DockerDaemon(RegistryRef),
    /// An image in podman's storage, through podman's service (`podman:NAME[:TAG]`).
    Podman(RegistryRef),
    /// An image in a containerd namespace (`containerd:[NAMESPACE/]NAME[:TAG]`).
    Containerd {
        namespace: String,
        name: RegistryRef,
    },
}

/// containerd's namespace when none is named.
pub const CONTAINERD_DEFAULT_NAMESPACE: &str = "default";

/// The transport part of a reference, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Scratch,
    Oci,
    OciArchive,
    DockerArchive,
    Docker,
    DockerDaemon,
    Podman,
    Containerd,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "reference {0:?} is empty after its transport (expected for example oci:./out:latest)"
    )]
    EmptyPath(String),
    #[error("reference {input:?}: {why}")]
    Invalid { input: String, why: String },
}

fn invalid(input: &str, why: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        input: input.to_string(),
        why: why.into(),
    }
}

impl Reference {
    pub fn transport(&self) -> Transport {
        match self {
            Reference::Scratch => Transport::Scratch,
            Reference::Layout { .. } => Transport::Oci,
            Reference::OciArchive { .. } => Transport::OciArchive,
            Reference::DockerArchive { .. } => Transport::DockerArchive,
            Reference::Registry(_) => Transport::Docker,
            Reference::DockerDaemon(_) => Transport::DockerDaemon,
            Reference::Podman(_) => Transport::Podman,
            Reference::Containerd { .. } => Transport::Containerd,
        }
    }

    /// Whether this is the empty base, `scratch`.
    pub fn is_scratch(&self) -> bool {
        *self == Reference::Scratch
    }

    /// The same reference with a relative local path taken relative to `dir` (a spec's
    /// directory, or where teu runs); registry references and absolute paths unchanged.
    pub fn relative_to(mut self, dir: &std::path::Path) -> Reference {
        match &mut self {
            Reference::Layout { path, .. }
            | Reference::OciArchive { path, .. }
            | Reference::DockerArchive { path, .. }
                if path.is_relative() =>
            {
                *path = dir.join(&*path);
            }
            _ => {}
        }
        self
    }

    /// The local file or directory the reference names, if it is local.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        match self {
            Reference::Layout { path, .. }
            | Reference::OciArchive { path, .. }
            | Reference::DockerArchive { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// `containerd:[NAMESPACE/]NAME` as teu writes it: `default` is left out when the name
/// alone reads back as in `default` (`ghcr.io/app:1` alone would read as namespace
/// `ghcr.io`).
pub fn containerd_reference(namespace: &str, name: &RegistryRef) -> String {
    let q = name.qualified();
    if namespace == CONTAINERD_DEFAULT_NAMESPACE
        && containerd_namespace(&q).0 == CONTAINERD_DEFAULT_NAMESPACE
    {
        format!("containerd:{q}")
    } else {
        format!("containerd:{namespace}/{q}")
    }
}

/// Whether `s`, given as an image reference, is a bare Docker Hub short name (`app`,
/// `app:1`: no registry host, no transport), for the hint that a local file of that
/// name was probably meant.
pub fn is_bare_hub_name(s: &str) -> bool {
    !s.contains('/') && matches!(s.parse::<Reference>(), Ok(Reference::Registry(_)))
}

/// Whether `s` is written like a file path (`/x`, `./x`, `../x`, `~/x`) rather than an
/// image name: such a string given as a registry reference gets a hint to say `oci:`.
pub fn looks_like_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("../")
        || s.starts_with('~')
        || s == "."
        || s == ".."
}

fn path_and_tag(input: &str, rest: &str) -> Result<(PathBuf, Option<String>), ReferenceError> {
    let (path, tag) = match rest.split_once(':') {
        Some((p, t)) => (p, Some(t)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(ReferenceError::EmptyPath(input.to_string()));
    }
    if let Some(t) = tag {
        validate_layout_tag(input, t)?;
    }
    Ok((PathBuf::from(path), tag.map(str::to_string)))
}

/// Layout tags are `ref.name` annotations; teu restricts them to what a registry tag or a
/// full reference can hold, so a tag written to a layout can be pushed later.
fn validate_layout_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let ok = !tag.is_empty()
        && tag.len() <= 255
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            input,
            format!("tag {tag:?} may only hold letters, digits and ._-:/@"),
        ))
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "scratch" {
            return Ok(Reference::Scratch);
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (path, tag) = path_and_tag(s, rest)?;
            return Ok(Reference::Layout { path, tag });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (path, tag) = path_and_tag(s, rest)?;
            return Ok(Reference::OciArchive { path, tag });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, name) = match rest.split_once(':') {
                Some((p, n)) => (p, Some(n.parse::<RegistryRef>()?)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(ReferenceError::EmptyPath(s.to_string()));
            }
            if let Some(n) = &name {
                if n.digest.is_some() {
                    return Err(invalid(
                        s,
                        "a docker-archive name takes a tag, not a digest",
                    ));
                }
            }
            return Ok(Reference::DockerArchive {
                path: PathBuf::from(path),
                name,
            });
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            return Ok(Reference::Registry(rest.parse()?));
        }
        if let Some(rest) = s.strip_prefix("docker-daemon:") {
            return Ok(Reference::DockerDaemon(engine_name(s, rest)?));
        }
        if let Some(rest) = s
            .strip_prefix("podman:")
            .or_else(|| s.strip_prefix("containers-storage:"))
        {
            return Ok(Reference::Podman(engine_name(s, rest)?));
        }
        if let Some(rest) = s.strip_prefix("containerd:") {
            let (namespace, name) = containerd_namespace(rest);
            return Ok(Reference::Containerd {
                namespace: namespace.to_string(),
                name: engine_name(s, name)?,
            });
        }
        if let Some((transport, _)) = s.split_once(':') {
            // `host:port/repo` is a registry reference; `word:rest` with no slash before
            // the colon and an unknown word is a mistyped transport.
            let looks_like_transport = !transport.contains('/')
                && !transport.starts_with('[')
                && !transport.contains('.')
                && transport != "localhost"
                && s[transport.len() + 1..].contains('/');
            if looks_like_transport && !transport.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(
                    s,
                    format!(
                        "unknown transport {transport:?} (known: oci:, oci-archive:, docker-archive:, docker://, docker-daemon:, podman:, containerd:)"
                    ),
                ));
            }
        }
        if looks_like_path(s) {
            return Err(invalid(
                s,
                format!(
                    "is a path, not an image name; write oci:{s} for an OCI layout (or oci-archive:{s}, docker-archive:{s})"
                ),
            ));
        }
        Ok(Reference::Registry(s.parse()?))
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Scratch => write!(f, "scratch"),
            Reference::Layout { path, tag } => {
                write!(f, "oci:{}", path.display())?;
                tag.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            Reference::OciArchive { path, tag } => {
                write!(f, "oci-archive:{}", path.display())?;
                tag.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            Reference::DockerArchive { path, name } => {
                write!(f, "docker-archive:{}", path.display())?;
                name.iter().try_for_each(|n| write!(f, ":{n}"))
            }
            Reference::Registry(r) => write!(f, "docker://{r}"),
            Reference::DockerDaemon(n) => write!(f, "docker-daemon:{}", n.familiar()),
            Reference::Podman(n) => write!(f, "podman:{}", n.qualified()),
            Reference::Containerd { namespace, name } => {
                f.write_str(&containerd_reference(namespace, name))
            }
        }
    }
}

/// An engine's image name: a registry name with a tag (`latest` when none), no digest.
fn engine_name(input: &str, rest: &str) -> Result<RegistryRef, ReferenceError> {
    if rest.is_empty() {
        return Err(ReferenceError::EmptyPath(input.to_string()));
    }
    let mut n: RegistryRef = rest.parse()?;
    if n.digest.is_some() {
        return Err(invalid(
            input,
            "an engine's image is named NAME[:TAG]; a digest cannot be given",
        ));
    }
    n.tag = n.tag_or_latest().map(str::to_string);
    Ok(n)
}

/// `[NAMESPACE/]NAME`: the first component is a namespace when what follows it is a
/// one-component name (`k8s.io/app:1`) or a fully qualified one whose first component is a
/// registry host (`moby/docker.io/library/app:1`). So `docker.io/library/app` and
/// `ghcr.io/me/app` are names in `default`, and a Docker Hub user's repository in another
/// namespace is written in full (`teu/docker.io/user/app`). containerd namespaces hold no
/// `:`, so `localhost:5000/app` is a name; `localhost/app` is one too.
fn containerd_namespace(rest: &str) -> (&str, &str) {
    let is_host = |c: &str| c.contains(['.', ':']) || c == "localhost";
    let ns_ok = |c: &str| {
        !c.is_empty()
            && c != "localhost"
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if let Some((first, name)) = rest.split_once('/') {
        let name_first = name.split('/').next().unwrap_or("");
        let one_component = !name.contains('/');
        if ns_ok(first) && (one_component || is_host(name_first)) {
            return (first, name);
        }
    }
    (CONTAINERD_DEFAULT_NAMESPACE, rest)
}

/// A registry reference, normalized as Docker does: `alpine` is
/// `docker.io/library/alpine:latest`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

pub const DOCKER_HUB: &str = "docker.io";

impl RegistryRef {
    /// The tag, or `latest` when neither tag nor digest was given.
    pub fn tag_or_latest(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some("latest"),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The fully qualified name with its tag (`docker.io/library/app:latest`), as
    /// containerd and podman name images; `registry/repository@digest` for a digest.
    pub fn qualified(&self) -> String {
        match (self.tag_or_latest(), &self.digest) {
            (Some(t), _) => format!("{}:{t}", self.name()),
            (None, Some(d)) => format!("{}@{d}", self.name()),
            (None, None) => self.name(),
        }
    }

    /// Docker's familiar short form (`alpine:3.20` for `docker.io/library/alpine:3.20`).
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        if let Some(t) = self.tag_or_latest() {
            name.push(':');
            name.push_str(t);
        }
        name
    }
}

impl FromStr for RegistryRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(invalid(s, "empty image reference"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|e| invalid(s, e.to_string()))?),
            ),
            None => (s, None),
        };
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => (
                &name_tag[..last_slash + i],
                Some(&name_tag[last_slash + i + 1..]),
            ),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                return Err(invalid(
                    s,
                    format!("tag {t:?} is not a valid tag ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"),
                ));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        check_host(s, &registry)?;
        if !repository.split('/').all(component_ok) {
            return Err(invalid(
                s,
                format!(
                    "repository {repository:?} must be lowercase path components of letters and digits, separated by '.', '_', '__' or dashes (like team/my-app)"
                ),
            ));
        }
        Ok(RegistryRef {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

/// Whether `name` is a repository name as the distribution spec defines it: components
/// of [`component_ok`] joined by `/`, at most 255 bytes. Shared by the client's reference
/// parsing and the server's routes.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(component_ok)
}

/// A repository path component as the distribution spec defines it:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// A registry host: a name or an IPv4 address, or a bracketed IPv6 address, with an
/// optional port from 1 to 65535.
fn check_host(input: &str, registry: &str) -> Result<(), ReferenceError> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h, None),
            Some((h, p)) if p.starts_with(':') => (h, Some(&p[1..])),
            _ => {
                return Err(invalid(
                    input,
                    format!("registry {registry:?} is not HOST[:PORT]"),
                ))
            }
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    let host_ok = !host.is_empty()
        && if registry.starts_with('[') {
            host.bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        } else {
            host.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
        };
    if !host_ok {
        return Err(invalid(
            input,
            format!("registry host {host:?} is not a host name or an IP address"),
        ));
    }
    if let Some(p) = port {
        match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) && p.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => {
                return Err(invalid(
                    input,
                    format!("port {p:?} of registry {host} is not a number from 1 to 65535"),
                ))
            }
        }
    }
    Ok(())
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RegistryRef {
        match s.parse::<Reference>().unwrap() {
            Reference::Registry(r) => r,
            other => panic!("{s} parsed as {other:?}"),
        }
    }

    #[test]
    fn bad_ports_hosts_and_repositories_are_refused_when_parsed() {
        for bad in [
            "127.0.0.1:99999/repo:tag",
            "127.0.0.1:0/repo",
            "127.0.0.1:abc/repo",
            "localhost:/repo",
            "reg.example.com/re..po",
            "reg.example.com/-repo",
            "reg.example.com/re--po-/x",
            "reg.example.com/a/_b",
            "bad_host.example.com:5000/x",
        ] {
            let e = bad.parse::<Reference>().unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = "127.0.0.1:99999/repo:tag"
            .parse::<Reference>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("1 to 65535"), "{e}");
        for good in [
            "127.0.0.1:5000/repo:tag",
            "localhost:65535/a/b",
            "[::1]:5000/x",
            "reg.example.com/my-app__x/v.1",
            "reg.example.com/a---b",
            "ghcr.io/owner/app_1",
        ] {
            good.parse::<Reference>()
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn docker_hub_short_names_expand() {
        let r = reg("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/alpine")
        );
        assert_eq!(r.tag_or_latest(), Some("latest"));
        assert_eq!(
            reg("library/alpine:3.20").to_string(),
            "docker.io/library/alpine:3.20"
        );
        assert_eq!(reg("docker.io/foo/bar").repository, "foo/bar");
        assert_eq!(reg("index.docker.io/library/alpine").registry, "docker.io");
        assert_eq!(reg("user/app:1").familiar(), "user/app:1");
    }

    #[test]
    fn registries_with_ports_and_digests() {
        let r = reg("localhost:5000/team/app:v1");
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = reg(&format!("docker://127.0.0.1:5000/app@{d}"));
        assert_eq!(r.digest.as_ref().unwrap().to_string(), d);
        assert_eq!(r.tag_or_latest(), None);
    }

    #[test]
    fn transports() {
        assert_eq!(
            "oci:out:v1".parse::<Reference>().unwrap(),
            Reference::Layout {
                path: "out".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            "oci-archive:/tmp/a.tar".parse::<Reference>().unwrap(),
            Reference::OciArchive {
                path: "/tmp/a.tar".into(),
                tag: None
            }
        );
        match "docker-archive:img.tar:app:1".parse::<Reference>().unwrap() {
            Reference::DockerArchive { path, name } => {
                assert_eq!(path, PathBuf::from("img.tar"));
                assert_eq!(name.unwrap().familiar(), "app:1");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!("scratch".parse::<Reference>().unwrap(), Reference::Scratch);
    }

    #[test]
    fn engine_references() {
        let r: Reference = "docker-daemon:app:dev".parse().unwrap();
        assert_eq!(r.to_string(), "docker-daemon:app:dev");
        let Reference::DockerDaemon(n) = &r else {
            panic!("{r:?}")
        };
        assert_eq!(n.qualified(), "docker.io/library/app:dev");
        let r: Reference = "docker-daemon:app".parse().unwrap();
        assert_eq!(r.to_string(), "docker-daemon:app:latest");
        for s in ["podman:app:1", "containers-storage:app:1"] {
            let r: Reference = s.parse().unwrap();
            assert_eq!(r.to_string(), "podman:docker.io/library/app:1");
        }
        let ns = |s: &str| match s.parse::<Reference>().unwrap() {
            Reference::Containerd { namespace, name } => (namespace, name.qualified()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            ns("containerd:app:1"),
            ("default".into(), "docker.io/library/app:1".into())
        );
        assert_eq!(
            ns("containerd:k8s.io/app:1"),
            ("k8s.io".into(), "docker.io/library/app:1".into())
        );
        assert_eq!(
            ns("containerd:moby/docker.io/teu/app:1"),
            ("moby".into(), "docker.io/teu/app:1".into())
        );
        assert_eq!(
            ns("containerd:docker.io/library/app:1"),
            ("default".into(), "docker.io/library/app:1".into())
        );
        assert_eq!(
            ns("containerd:ghcr.io/me/app"),
            ("default".into(), "ghcr.io/me/app:latest".into())
        );
        assert_eq!(
            ns("containerd:localhost:5000/app:1"),
            ("default".into(), "localhost:5000/app:1".into())
        );
        for s in [
            "containerd:k8s.io/app:1",
            "containerd:app:1",
            "containerd:teu/docker.io/teu/app:1",
            "containerd:default/ghcr.io/app:1",
        ] {
            let r: Reference = s.parse().unwrap();
            assert_eq!(r.to_string().parse::<Reference>().unwrap(), r, "{s}");
        }
        for bad in [
            "docker-daemon:",
            "podman:app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "containerd:",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn bad_references_are_refused() {
        for bad in [
            "oci:",
            "Upper/Case",
            "docker://",
            "app:bad tag",
            "ocix:dir/x",
            "oci:d:bad tag",
        ] {
            assert!(bad.parse::<Reference>().is_err(), "{bad} should not parse");
        }
    }
}
