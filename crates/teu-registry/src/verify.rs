//! A reader that checks a blob against its digest and size while it is read.

use std::io::{self, Read};

use teu_oci::{Digest, Sha256Writer};

/// Passes bytes through and fails the read that reaches the end (or passes the expected
/// size) when the content does not match: a consumer streaming into an upload aborts the
/// upload instead of sending a corrupt blob.
pub struct VerifyingReader<R> {
    inner: R,
    expected: Digest,
    size: u64,
    hasher: Option<Sha256Writer<io::Sink>>,
    what: String,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: u64, what: impl Into<String>) -> Self {
        VerifyingReader {
            inner,
            expected,
            size,
            hasher: Some(Sha256Writer::new(io::sink())),
            what: what.into(),
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(h) = self.hasher.as_mut() else {
            return Ok(0);
        };
        let n = self.inner.read(buf)?;
        h.update(&buf[..n]);
        if h.len() > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: more than the {} bytes its descriptor says",
                    self.what, self.size
                ),
            ));
        }
        if n == 0 {
            let (actual, len, _) = self.hasher.take().expect("checked above").finish();
            if actual != self.expected || len != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: content does not match {} (got {actual}, {len} bytes)",
                        self.what, self.expected
                    ),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_bytes_pass_and_bad_bytes_fail_at_the_end() {
        let d = Digest::of(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], d.clone(), 5, "x")
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let e = VerifyingReader::new(&b"hellO"[..], d.clone(), 5, "blob x")
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(e.to_string().contains("blob x"), "{e}");
        assert!(VerifyingReader::new(&b"hello!"[..], d, 5, "x")
            .read_to_end(&mut Vec::new())
            .is_err());
    }
}
