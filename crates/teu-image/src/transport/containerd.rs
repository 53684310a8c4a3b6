//! `containerd:[NAMESPACE/]NAME[:TAG]`: an image written into containerd through its gRPC
//! API (the `containerd-client` crate), moving only the blobs its content store lacks and
//! keeping the manifest or index digest and every platform of an index.
//!
//! The socket is `--containerd-address`, else `$CONTAINERD_ADDRESS`, else
//! `/run/containerd/containerd.sock`; the namespace is the reference's, `default` when it
//! names none (Docker's containerd image store is the `moby` namespace).
//!
//! Plan: `Content.Info` for every config and layer; those present are skipped. Write, under
//! a lease (so that nothing written is collected before the image names it): each missing
//! blob through `Content.Write` (1 MiB messages, committed with its expected digest and size,
//! which containerd checks), then each manifest and index the content store lacks, with
//! the `containerd.io/gc.ref.content.*` labels that keep their children alive (as `ctr
//! import` writes them), then `Images.Create`, or `Images.Update` when the name exists.
//! The image is not unpacked into a snapshotter: `ctr run` and nerdctl unpack on first use.
//!
//! As a source ([`ContainerdSource`]): `Images.Get` names the top descriptor, and each blob
//! is streamed with `Content.Read` (on a thread of its own, handed over in 1 MiB pieces),
//! so `teu copy containerd:app:1 oci:out` keeps the digest.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::{
    content_client::ContentClient, images_client::ImagesClient, leases_client::LeasesClient,
    version_client::VersionClient, CreateImageRequest, CreateRequest, DeleteRequest,
    GetImageRequest, Image, InfoRequest, ListImagesRequest, ReadContentRequest, UpdateImageRequest,
    WriteAction, WriteContentRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::Descriptor as CdDescriptor;
use teu_oci::{media_type, Descriptor, Digest, Manifest, RegistryRef};
use tokio::runtime::Runtime;

use super::{Action, BlobPlan, Context, EngineReport, Sink, Source, Top};
use crate::blob::BlobSource;
use crate::error::ImageError;
use crate::image::{Artifact, BlobRef};

const CHUNK: usize = 1 << 20;

/// containerd's socket for this command.
pub fn address(cx: &Context) -> PathBuf {
    let given = cx
        .containerd_address
        .clone()
        .filter(|a| !a.as_os_str().is_empty())
        .or_else(|| std::env::var_os("CONTAINERD_ADDRESS").map(PathBuf::from))
        .filter(|a| !a.as_os_str().is_empty());
    match given {
        Some(a) => match a.to_str().and_then(|s| s.strip_prefix("unix://")) {
            Some(p) => PathBuf::from(p),
            None => a,
        },
        None => PathBuf::from("/run/containerd/containerd.sock"),
    }
}

fn runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting an I/O runtime: {e}"))
}

async fn connect(path: &Path) -> Result<Channel, String> {
    if !path.exists() {
        return Err(format!("{}: no such socket", path.display()));
    }
    containerd_client::connect(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether containerd answers on `path` (`Version`).
pub fn ping(path: &Path) -> Result<(), String> {
    let rt = runtime()?;
    rt.block_on(async {
        let ch = tokio::time::timeout(Duration::from_secs(5), connect(path))
            .await
            .map_err(|_| format!("{}: no answer in 5 s", path.display()))??;
        VersionClient::new(ch)
            .version(())
            .await
            .map(|_| ())
            .map_err(|s| format!("{}: {}", path.display(), s.message()))
    })
}

/// `containerd:[NAMESPACE/]NAME[:TAG]` as a sink.
pub struct ContainerdSink {
    address: PathBuf,
    namespace: String,
    name: RegistryRef,
    rt: OnceLock<Result<(Runtime, Channel), String>>,
    report: Mutex<Option<EngineReport>>,
}

impl ContainerdSink {
    pub fn new(address: &Path, namespace: &str, name: &RegistryRef) -> ContainerdSink {
        ContainerdSink {
            address: address.to_path_buf(),
            namespace: namespace.to_string(),
            name: name.clone(),
            rt: OnceLock::new(),
            report: Mutex::new(None),
        }
    }

    fn err(&self, message: impl Into<String>) -> ImageError {
        ImageError::Engine {
            engine: format!(
                "containerd unix://{} (namespace {})",
                self.address.display(),
                self.namespace
            ),
            message: message.into(),
        }
    }

    fn status(&self, what: &str) -> impl Fn(Status) -> ImageError + '_ {
        let what = what.to_string();
        move |s| self.err(format!("{what}: {} ({:?})", s.message(), s.code()))
    }

    fn conn(&self) -> Result<&(Runtime, Channel), ImageError> {
        self.rt
            .get_or_init(|| {
                let rt = runtime()?;
                let ch = rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(10), connect(&self.address))
                        .await
                        .map_err(|_| "no answer in 10 s".to_string())?
                })?;
                Ok((rt, ch))
            })
            .as_ref()
            .map_err(|e| {
                self.err(format!(
                    "{e} (is containerd running, and is this its socket?)"
                ))
            })
    }

    /// A request in the namespace, under `lease` when given.
    fn req<T>(&self, msg: T, lease: Option<&str>) -> Request<T> {
        let mut r = Request::new(msg);
        let md = r.metadata_mut();
        if let Ok(v) = self.namespace.parse() {
            md.insert("containerd-namespace", v);
        }
        if let Some(l) = lease.and_then(|l| l.parse().ok()) {
            md.insert("containerd-lease", l);
        }
        r
    }

    async fn has(&self, ch: &Channel, digest: &Digest) -> Result<bool, ImageError> {
        let r = ContentClient::new(ch.clone())
            .info(self.req(
                InfoRequest {
                    digest: digest.to_string(),
                },
                None,
            ))
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(self.status(&format!("Content.Info {digest}"))(s)),
        }
    }

    /// Write one blob: WRITE messages of up to 1 MiB, then COMMIT with the digest and size
    /// containerd verifies. Returns the bytes sent; an `AlreadyExists` answer (someone
    /// else wrote it meanwhile) is success with nothing sent.
    async fn write_blob(
        &self,
        ch: &Channel,
        lease: &str,
        desc: &Descriptor,
        mut reader: Box<dyn Read + Send + '_>,
        labels: HashMap<String, String>,
    ) -> Result<u64, ImageError> {
        let what = format!("Content.Write {}", desc.digest);
        let (tx, rx) = tokio::sync::mpsc::channel::<WriteContentRequest>(4);
        let base = WriteContentRequest {
            r#ref: format!("teu-{}", desc.digest.hex()),
            total: desc.size as i64,
            expected: desc.digest.to_string(),
            ..Default::default()
        };
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        let read_chunk = |reader: &mut Box<dyn Read + Send + '_>, buf: &mut [u8]| {
            let mut n = 0;
            while n < buf.len() {
                match reader.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(n)
        };
        let io = |e: std::io::Error| self.err(format!("{what}: reading the blob: {e}"));
        let first = read_chunk(&mut reader, &mut buf).map_err(io)?;
        let last = offset + first as u64 >= desc.size;
        let msg = |action: WriteAction, offset: u64, data: &[u8], labels| WriteContentRequest {
            action: action as i32,
            offset: offset as i64,
            data: data.to_vec(),
            labels,
            ..base.clone()
        };
        let action = |last: bool| {
            if last {
                WriteAction::Commit
            } else {
                WriteAction::Write
            }
        };
        let gone = || self.err(format!("{what}: containerd closed the stream"));
        tx.send(msg(
            action(last),
            0,
            &buf[..first],
            if last { labels.clone() } else { HashMap::new() },
        ))
        .await
        .map_err(|_| gone())?;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut resp = match ContentClient::new(ch.clone())
            .write(self.req(stream, Some(lease)))
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(0),
            Err(s) => return Err(self.status(&what)(s)),
        };
        let next = |r: Result<Option<_>, Status>| match r {
            Ok(Some(_)) => Ok(true),
            Ok(None) => Err(gone()),
            Err(s) if s.code() == Code::AlreadyExists => Ok(false),
            Err(s) => Err(self.status(&what)(s)),
        };
        if !next(resp.message().await)? {
            return Ok(0);
        }
        offset += first as u64;
        let mut done = last;
        while !done {
            let n = read_chunk(&mut reader, &mut buf).map_err(io)?;
            if n == 0 && offset < desc.size {
                return Err(self.err(format!(
                    "{what}: the blob ended after {offset} of {} bytes",
                    desc.size
                )));
            }
            done = offset + n as u64 >= desc.size;
            tx.send(msg(
                action(done),
                offset,
                &buf[..n],
                if done { labels.clone() } else { HashMap::new() },
            ))
            .await
            .map_err(|_| gone())?;
            if !next(resp.message().await)? {
                return Ok(0);
            }
            offset += n as u64;
        }
        if read_chunk(&mut reader, &mut buf[..1]).map_err(io)? != 0 {
            return Err(self.err(format!(
                "{what}: the blob is longer than its {} bytes",
                desc.size
            )));
        }
        drop(tx);
        Ok(offset)
    }
}

/// The labels that keep a manifest's or index's children from containerd's gc.
fn gc_labels(media: &str, bytes: &[u8]) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    if media_type::is_index(media) {
        if let Ok(ix) = serde_json::from_slice::<teu_oci::Index>(bytes) {
            for (i, m) in ix.manifests.iter().enumerate() {
                labels.insert(
                    format!("containerd.io/gc.ref.content.m.{i}"),
                    m.digest.to_string(),
                );
            }
        }
    } else if let Ok(m) = serde_json::from_slice::<Manifest>(bytes) {
        labels.insert(
            "containerd.io/gc.ref.content.config".to_string(),
            m.config.digest.to_string(),
        );
        for (i, l) in m.layers.iter().enumerate() {
            labels.insert(
                format!("containerd.io/gc.ref.content.l.{i}"),
                l.digest.to_string(),
            );
        }
    }
    labels
}

/// RFC 3339 UTC, for the lease's expiry label.
fn rfc3339(t: SystemTime) -> String {
    teu_oci::time::rfc3339(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}

impl Sink for ContainerdSink {
    fn name(&self) -> String {
        teu_oci::containerd_reference(&self.namespace, &self.name)
    }
    fn is_local(&self) -> bool {
        true
    }
    fn tags(&self) -> Vec<String> {
        vec![self.name.qualified()]
    }
    fn plan(&self, artifact: &Artifact) -> Result<Vec<BlobPlan>, ImageError> {
        let (rt, ch) = self.conn()?;
        rt.block_on(async {
            let mut plans = Vec::new();
            for (d, b) in artifact.content_blobs() {
                let has = self.has(ch, &d.digest).await?;
                plans.push(BlobPlan {
                    digest: d.digest.clone(),
                    size: d.size,
                    action: if has { Action::Skip } else { Action::Copy },
                    from: super::from_name(&b),
                    mount_from: None,
                });
            }
            Ok(plans)
        })
    }
    fn write(&self, artifact: &Artifact, plan: &mut [BlobPlan]) -> Result<u64, ImageError> {
        let (rt, ch) = self.conn()?;
        let blobs: HashMap<Digest, (Descriptor, BlobRef)> = artifact
            .content_blobs()
            .into_iter()
            .map(|(d, b)| (d.digest.clone(), (d, b)))
            .collect();
        let (sent, written_docs) = rt.block_on(async {
            let expire = rfc3339(SystemTime::now() + Duration::from_secs(3600));
            let lease = LeasesClient::new(ch.clone())
                .create(self.req(
                    CreateRequest {
                        id: String::new(),
                        labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
                    },
                    None,
                ))
                .await
                .map_err(self.status("Leases.Create"))?
                .into_inner()
                .lease
                .map(|l| l.id)
                .unwrap_or_default();
            let mut sent = 0u64;
            for p in plan.iter_mut() {
                if p.action == Action::Skip {
                    continue;
                }
                let (d, b) = &blobs[&p.digest];
                let n = self
                    .write_blob(ch, &lease, d, b.open(&d.digest)?, HashMap::new())
                    .await?;
                if n == 0 {
                    p.action = Action::Skip;
                }
                sent += n;
            }
            // Manifests and nested indexes innermost first, then the top document.
            let mut docs: Vec<(Descriptor, &[u8])> = artifact.child_documents();
            if let Artifact::Image(i) = artifact {
                docs.push((i.descriptor(), &i.manifest.bytes[..]));
            } else {
                docs.push((artifact.descriptor(), artifact.root_bytes()));
            }
            let mut written_docs = 0;
            for (d, bytes) in docs {
                if self.has(ch, &d.digest).await? {
                    continue;
                }
                let n = self
                    .write_blob(
                        ch,
                        &lease,
                        &d,
                        Box::new(bytes),
                        gc_labels(&d.media_type, bytes),
                    )
                    .await?;
                sent += n;
                written_docs += 1;
            }
            let top = artifact.descriptor();
            let image = Image {
                name: self.name.qualified(),
                labels: HashMap::new(),
                target: Some(CdDescriptor {
                    media_type: top.media_type.clone(),
                    digest: top.digest.to_string(),
                    size: top.size as i64,
                    annotations: HashMap::new(),
                }),
                created_at: None,
                updated_at: None,
            };
            let mut images = ImagesClient::new(ch.clone());
            let created = images
                .create(self.req(
                    CreateImageRequest {
                        image: Some(image.clone()),
                        source_date_epoch: None,
                    },
                    Some(&lease),
                ))
                .await;
            match created {
                Ok(_) => {}
                Err(s) if s.code() == Code::AlreadyExists => {
                    images
                        .update(self.req(
                            UpdateImageRequest {
                                image: Some(image),
                                update_mask: None,
                                source_date_epoch: None,
                            },
                            Some(&lease),
                        ))
                        .await
                        .map_err(self.status("Images.Update"))?;
                }
                Err(s) => return Err(self.status("Images.Create")(s)),
            }
            // The image record now holds everything; the lease is not needed.
            let _ = LeasesClient::new(ch.clone())
                .delete(self.req(
                    DeleteRequest {
                        id: lease,
                        sync: false,
                    },
                    None,
                ))
                .await;
            Ok::<_, ImageError>((sent, written_docs))
        })?;
        let moved = plan.iter().any(|p| p.action != Action::Skip) || written_docs > 0;
        *self.report.lock().expect("not poisoned") = Some(EngineReport {
            engine: "containerd".to_string(),
            address: format!("unix://{}", self.address.display()),
            name: self.name.qualified(),
            digest: artifact.digest(),
            keeps_manifest_digest: true,
            bytes_sent: sent,
            how: if moved { "written" } else { "tagged" }.to_string(),
            warnings: Vec::new(),
        });
        Ok(sent)
    }
    fn engine(&self) -> Option<EngineReport> {
        self.report.lock().expect("not poisoned").clone()
    }
}

/// `containerd:[NAMESPACE/]NAME[:TAG]` as a source.
pub struct ContainerdSource {
    sink: ContainerdSink,
}

impl ContainerdSource {
    pub fn new(address: &Path, namespace: &str, name: &RegistryRef) -> ContainerdSource {
        ContainerdSource {
            sink: ContainerdSink::new(address, namespace, name),
        }
    }
}

impl Source for ContainerdSource {
    fn name(&self) -> String {
        self.sink.name()
    }
    fn open(&self) -> Result<Top, ImageError> {
        let s = &self.sink;
        let (rt, ch) = s.conn()?;
        let name = s.name.qualified();
        let image = rt.block_on(async {
            ImagesClient::new(ch.clone())
                .get(s.req(GetImageRequest { name: name.clone() }, None))
                .await
        });
        let target = match image {
            Ok(r) => r.into_inner().image.and_then(|i| i.target),
            Err(st) if st.code() == Code::NotFound => None,
            Err(st) => return Err(s.status("Images.Get")(st)),
        }
        .ok_or_else(|| ImageError::NotFound {
            what: s.name(),
            message: format!(
                "containerd has no image {name} in namespace {}",
                s.namespace
            ),
        })?;
        let digest: Digest = target
            .digest
            .parse()
            .map_err(|e| s.err(format!("image {name}: digest {:?}: {e}", target.digest)))?;
        Ok(Top {
            blobs: std::sync::Arc::new(ContainerdBlobs {
                address: s.address.clone(),
                namespace: s.namespace.clone(),
            }),
            descriptor: Descriptor::new(&target.media_type, digest, target.size as u64),
        })
    }
    fn tags(&self) -> Result<Vec<String>, ImageError> {
        let s = &self.sink;
        let (rt, ch) = s.conn()?;
        let repo = s.name.name();
        let list = rt
            .block_on(async {
                ImagesClient::new(ch.clone())
                    .list(s.req(ListImagesRequest { filters: vec![] }, None))
                    .await
            })
            .map_err(s.status("Images.List"))?;
        Ok(list
            .into_inner()
            .images
            .into_iter()
            .filter_map(|i| i.name.strip_prefix(&format!("{repo}:")).map(str::to_string))
            .collect())
    }
}

/// Blobs in a containerd namespace's content store.
#[derive(Debug)]
struct ContainerdBlobs {
    address: PathBuf,
    namespace: String,
}

/// A blob read on a thread of its own, handed over in pieces.
struct ChunkReader {
    rx: std::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            match self.rx.recv() {
                Ok(Ok(b)) => {
                    self.buf = b;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(std::io::Error::other(e)),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl BlobSource for ContainerdBlobs {
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, ImageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let (address, namespace, digest) = (
            self.address.clone(),
            self.namespace.clone(),
            digest.to_string(),
        );
        std::thread::spawn(move || {
            let run = || -> Result<(), String> {
                let rt = runtime()?;
                rt.block_on(async {
                    let ch = connect(&address).await?;
                    let mut req = Request::new(ReadContentRequest {
                        digest: digest.clone(),
                        offset: 0,
                        size: 0,
                    });
                    if let Ok(v) = namespace.parse() {
                        req.metadata_mut().insert("containerd-namespace", v);
                    }
                    let mut stream = ContentClient::new(ch)
                        .read(req)
                        .await
                        .map_err(|s| format!("Content.Read {digest}: {}", s.message()))?
                        .into_inner();
                    while let Some(m) = stream
                        .message()
                        .await
                        .map_err(|s| format!("Content.Read {digest}: {}", s.message()))?
                    {
                        if tx.send(Ok(m.data)).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            };
            if let Err(e) = run() {
                let _ = tx.send(Err(e));
            }
        });
        Ok(Box::new(ChunkReader {
            rx,
            buf: Vec::new(),
            at: 0,
        }))
    }
    fn name(&self) -> String {
        format!(
            "containerd unix://{} (namespace {})",
            self.address.display(),
            self.namespace
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lease_expiry_is_rfc3339() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(super::rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            super::rfc3339(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            "2024-02-29T23:59:59Z"
        );
    }
}
