//! A small HTTP/1.1 client over a unix socket, for the Docker Engine API and podman's
//! Docker-compatible service.
//!
//! Why hand-written: the engine APIs teu needs are five requests (`_ping`, `info`, image
//! inspect, tag, load), each on a fresh connection with `Connection: close`, one of them a
//! chunked upload streamed from a synchronous writer. hyper + hyperlocal (or hyper-util's
//! legacy client) would bring an async body type and a runtime into the sink for that, and
//! reqwest (which teu uses for registries) has no unix-socket connector. What is here is
//! the subset those requests use: a request line and headers out, a chunked body out, and
//! a response with `Content-Length`, chunked or read-to-close body in.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A response: status and whole body (engine answers are small JSON documents or lines).
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }
}

/// An engine's API socket.
#[derive(Clone, Debug)]
pub(crate) struct UnixHttp {
    pub path: PathBuf,
}

impl UnixHttp {
    pub fn new(path: &Path) -> UnixHttp {
        UnixHttp {
            path: path.to_path_buf(),
        }
    }

    fn connect(&self, timeout: Option<Duration>) -> io::Result<UnixStream> {
        let s = UnixStream::connect(&self.path)?;
        s.set_read_timeout(timeout)?;
        Ok(s)
    }

    /// A request with no body (or a small one).
    pub fn request(&self, method: &str, path: &str) -> io::Result<Response> {
        let mut s = self.connect(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: engine\r\nUser-Agent: teu\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        s.flush()?;
        read_response(s)
    }

    /// A request whose body `body` writes, sent chunked as it is written. Returns the
    /// response and the number of body bytes sent. If the engine answers (and closes)
    /// before the body is complete, its answer is returned, not the broken pipe.
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &mut dyn FnMut(&mut dyn Write) -> Result<(), crate::ImageError>,
    ) -> Result<(Response, u64), crate::ImageError> {
        let what = || format!("{method} {path} on {}", self.path.display());
        let io = |e| crate::error::io_err(what())(e);
        // Loading unpacks every layer before the answer comes: no read timeout.
        let mut s = self.connect(None).map_err(io)?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: engine\r\nUser-Agent: teu\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .map_err(io)?;
        let mut chunked = Chunked {
            out: io::BufWriter::with_capacity(1 << 20, s.try_clone().map_err(io)?),
            sent: 0,
        };
        let sent = {
            let mut w = io::BufWriter::with_capacity(1 << 20, &mut chunked);
            let r = body(&mut w).and_then(|()| w.flush().map_err(io));
            drop(w);
            r.and_then(|()| chunked.finish().map_err(io))
        };
        match sent {
            Ok(n) => Ok((read_response(s).map_err(io)?, n)),
            Err(e) => match read_response(s) {
                // The engine refused early (and said why).
                Ok(r) if !r.body.is_empty() => Ok((r, chunked.sent)),
                _ => Err(e),
            },
        }
    }
}

/// Writes each buffer it gets as one HTTP chunk.
struct Chunked<W: Write> {
    out: W,
    sent: u64,
}

impl<W: Write> Write for Chunked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        write!(self.out, "{:x}\r\n", buf.len())?;
        self.out.write_all(buf)?;
        self.out.write_all(b"\r\n")?;
        self.sent += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<W: Write> Chunked<W> {
    fn finish(&mut self) -> io::Result<u64> {
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()?;
        Ok(self.sent)
    }
}

impl UnixHttp {
    /// A GET whose body (an image archive, say) is written to `out` as it arrives, when
    /// the status is 2xx; otherwise the (small) error body is returned in the response.
    pub fn download(&self, path: &str, out: &mut dyn Write) -> io::Result<Response> {
        let mut s = self.connect(None)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: engine\r\nUser-Agent: teu\r\nConnection: close\r\n\r\n"
        )?;
        s.flush()?;
        read_response_into(s, Some(out))
    }
}

fn read_response(s: UnixStream) -> io::Result<Response> {
    read_response_into(s, None)
}

fn read_response_into(s: UnixStream, sink: Option<&mut dyn Write>) -> io::Result<Response> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("not an HTTP response"))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the response headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse::<u64>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let mut body = Vec::new();
    let ok = (200..300).contains(&status);
    let mut to_sink = sink.filter(|_| ok);
    let mut copy = |r: &mut dyn Read, body: &mut Vec<u8>| -> io::Result<()> {
        match to_sink.as_deref_mut() {
            Some(w) => io::copy(r, w).map(|_| ()),
            None => r.read_to_end(body).map(|_| ()),
        }
    };
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                break;
            }
            copy(&mut (&mut r).take(size), &mut body)?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        copy(&mut (&mut r).take(n), &mut body)?;
    } else if status != 204 && status != 304 {
        copy(&mut r, &mut body)?;
    }
    Ok(Response { status, body })
}

/// `%`-encoding for a query value (image names hold `/` and `:`).
pub(crate) fn query(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}
