//! One upstream GET per blob, however many clients want it.
//!
//! A cache miss starts a fill: a task that streams the upstream body into an anonymous
//! spool file (`O_TMPFILE`: nothing to clean up after a crash) while hashing it, and
//! publishes how many bytes have arrived on a watch channel. Every client of that blob,
//! the first included, is a follower: it reads the spool with `pread` up to what has
//! arrived and waits for more. The task belongs to no client, so a client that hangs up
//! does not cut the fill short for the others.
//!
//! The last byte of the blob is held back from every follower until the digest checks,
//! so no client ever completes a wrong blob: on a mismatch (or a short body) followers
//! get an error, which ends their connection mid-body. Storage is one more follower: the
//! bytes go into an upload session as they arrive, and the session is committed (the
//! same commit pushes use: fsync and rename on disk, the object made visible on S3) only
//! after its stream ended, which is only after the digest checked; a failed fill
//! deletes the session, so nothing unverified ever has the blob's name.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::upstream::{UpstreamClient, UpstreamError};
use crate::digest::{Digest, Hasher};
use crate::storage::ByteStream;

/// Most bytes gathered from the upstream for one write to the spool (and one wake-up of
/// the followers); fewer when no more have arrived yet.
const WRITE_CHUNK: usize = 256 * 1024;
/// Largest piece a follower reads from the spool at once.
const READ_CHUNK: usize = 512 * 1024;

#[derive(Clone, Debug)]
pub enum FillError {
    Upstream(UpstreamError),
    NotFound,
    /// The upstream sent bytes that are not the blob (digest or length).
    Corrupt(String),
    Io(String),
}

impl std::fmt::Display for FillError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FillError::Upstream(e) => write!(f, "{e}"),
            FillError::NotFound => f.write_str("the upstream does not have it"),
            FillError::Corrupt(m) => write!(f, "upstream sent a corrupt blob: {m}"),
            FillError::Io(m) => write!(f, "spooling: {m}"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum FillState {
    /// Waiting for the upstream's response head.
    Waiting,
    /// `written` bytes are in the spool; `size` is the upstream's Content-Length.
    Streaming {
        size: Option<u64>,
        written: u64,
    },
    /// Every byte is in the spool and the digest checked.
    Verified {
        size: u64,
    },
    Failed(FillError),
}

pub struct Fill {
    pub digest: Digest,
    file: Arc<std::fs::File>,
    state: watch::Receiver<FillState>,
    /// Cache repositories that asked for the blob while it filled: all get a link.
    pub repos: std::sync::Mutex<Vec<String>>,
}

impl Fill {
    /// A new fill, and the sender its task publishes progress on.
    pub fn new(
        digest: Digest,
        spool_dir: &std::path::Path,
        repo: &str,
    ) -> std::io::Result<(Arc<Fill>, watch::Sender<FillState>)> {
        let file = tempfile::tempfile_in(spool_dir)?;
        let (tx, rx) = watch::channel(FillState::Waiting);
        Ok((
            Arc::new(Fill {
                digest,
                file: Arc::new(file),
                state: rx,
                repos: std::sync::Mutex::new(vec![repo.to_string()]),
            }),
            tx,
        ))
    }

    /// The state once the upstream has answered (or the fill failed).
    pub async fn started(&self) -> FillState {
        let mut rx = self.state.clone();
        let r = rx
            .wait_for(|s| !matches!(s, FillState::Waiting))
            .await
            .map(|s| s.clone());
        r.unwrap_or_else(|_| FillState::Failed(FillError::Io("the fill stopped".into())))
    }

    /// Follow the fill: `range` of the blob (all of it without one), as the bytes arrive.
    pub fn follow(self: &Arc<Fill>, range: Option<Range<u64>>) -> ByteStream {
        let fill = self.clone();
        let rx = self.state.clone();
        let pos = range.as_ref().map_or(0, |r| r.start);
        let end = range.map(|r| r.end);
        let s = futures_util::stream::unfold(
            (fill, rx, pos, end, false),
            |(fill, mut rx, mut pos, end, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let st = rx.borrow_and_update().clone();
                    let (avail, size, verified) = match st {
                        FillState::Waiting => (0, None, false),
                        FillState::Streaming { size, written } => (written, size, false),
                        FillState::Verified { size } => (size, Some(size), true),
                        FillState::Failed(e) => {
                            let err = std::io::Error::other(e.to_string());
                            return Some((Err(err), (fill, rx, pos, end, true)));
                        }
                    };
                    let end_at = end.or(size).unwrap_or(u64::MAX);
                    // The blob's last byte waits for the digest.
                    let allowed = if verified || size.is_some_and(|s| end_at < s) {
                        avail.min(end_at)
                    } else {
                        avail
                            .min(end_at)
                            .min(size.unwrap_or(u64::MAX).saturating_sub(1))
                    };
                    if pos >= end_at && (verified || size.is_some_and(|s| end_at < s)) {
                        return None;
                    }
                    if pos < allowed {
                        let len = READ_CHUNK.min((allowed - pos) as usize);
                        let f = fill.file.clone();
                        let r = tokio::task::spawn_blocking(move || pread(&f, len, pos))
                            .await
                            .map_err(std::io::Error::other)
                            .and_then(|r| r);
                        return match r {
                            Ok(b) => {
                                pos += b.len() as u64;
                                Some((Ok(b), (fill, rx, pos, end, false)))
                            }
                            Err(e) => Some((Err(e), (fill, rx, pos, end, true))),
                        };
                    }
                    if rx.changed().await.is_err() {
                        // The task is gone; its last state is final.
                        let st = rx.borrow().clone();
                        if !matches!(st, FillState::Verified { .. } | FillState::Failed(_)) {
                            let err = std::io::Error::other("the fill stopped");
                            return Some((Err(err), (fill, rx, pos, end, true)));
                        }
                    }
                }
            },
        );
        Box::pin(s)
    }

    /// The fill's state now.
    pub fn state(&self) -> FillState {
        self.state.borrow().clone()
    }

    pub fn file(&self) -> Arc<std::fs::File> {
        self.file.clone()
    }
}

/// Stream the upstream's blob into the spool, publishing progress; the digest decides.
pub async fn run(
    up: &UpstreamClient,
    repo: &str,
    fill: &Fill,
    tx: &watch::Sender<FillState>,
) -> Result<u64, FillError> {
    let d = &fill.digest;
    let resp = up
        .send(
            reqwest::Method::GET,
            repo,
            &format!("blobs/{d}"),
            None,
            None,
        )
        .await
        .map_err(FillError::Upstream)?;
    match resp.status().as_u16() {
        200 => {}
        404 => return Err(FillError::NotFound),
        s => {
            return Err(FillError::Upstream(UpstreamError::Refused {
                upstream: up.cfg.name.clone(),
                message: format!("blob GET answered {s}"),
            }))
        }
    }
    let size = resp.content_length();
    tx.send_replace(FillState::Streaming { size, written: 0 });
    let mut hasher = Hasher::new(d.algorithm());
    let mut body = resp.bytes_stream();
    let mut buf = BytesMut::with_capacity(WRITE_CHUNK);
    let mut written = 0u64;
    let file = fill.file();
    let mut ended = false;
    while !ended {
        // Wait for a chunk, then take whatever else has already arrived (up to
        // WRITE_CHUNK) without waiting: a slow link gets each piece to the followers as
        // it lands, instead of after 256 KiB have piled up (4 ms at 60 MB/s, added to
        // every client's first byte and to its last), and a fast one still gets few,
        // large writes.
        let mut next = Some(body.next().await);
        while let Some(item) = next.take() {
            match item {
                Some(Ok(c)) => {
                    up.received(c.len());
                    hasher.update(&c);
                    buf.extend_from_slice(&c);
                }
                Some(Err(e)) => {
                    return Err(FillError::Upstream(UpstreamError::Connect {
                        upstream: up.cfg.name.clone(),
                        message: format!("blob body after {written} bytes: {e}"),
                    }))
                }
                None => ended = true,
            }
            if !ended && buf.len() < WRITE_CHUNK {
                next = body.next().now_or_never();
            }
        }
        if buf.is_empty() {
            continue;
        }
        let data = buf.split().freeze();
        let n = data.len() as u64;
        if size.is_some_and(|s| written + n > s) {
            return Err(FillError::Corrupt(format!(
                "more bytes than its Content-Length {}",
                size.unwrap_or(0)
            )));
        }
        let f = file.clone();
        let at = written;
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&data, at)
        })
        .await
        .map_err(|e| FillError::Io(e.to_string()))?
        .map_err(|e| FillError::Io(e.to_string()))?;
        written += n;
        tx.send_replace(FillState::Streaming { size, written });
    }
    if let Some(s) = size {
        if written != s {
            return Err(FillError::Corrupt(format!(
                "{written} bytes of {s} before the body ended"
            )));
        }
    }
    let got = hasher.finish();
    if &got != d {
        return Err(FillError::Corrupt(format!("its bytes hash to {got}")));
    }
    Ok(written)
}

fn pread(f: &std::fs::File, len: usize, offset: u64) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = f.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    if got == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the spool is shorter than announced",
        ));
    }
    buf.truncate(got);
    Ok(Bytes::from(buf))
}
