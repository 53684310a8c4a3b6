//! The 51-byte eStargz footer: an empty gzip member whose header's extra field names the
//! TOC member's offset, so a reader finds the TOC with one ranged read of the blob's end.
//!
//! Written byte by byte rather than through an encoder: the layout is fixed by the format
//! (Go's `gzip.NewWriterLevel(NoCompression)` output, which readers parse by position),
//! and no encoder version may change it.

/// Bytes of the footer.
pub const FOOTER_SIZE: usize = 51;

/// The footer pointing at a TOC member that starts at `toc_offset` of the blob.
pub fn footer(toc_offset: u64) -> [u8; FOOTER_SIZE] {
    let mut f = [0u8; FOOTER_SIZE];
    // Magic, deflate, FLG = FEXTRA, mtime 0, XFL 0, OS 255 (what Go's writer puts).
    f[..10].copy_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff]);
    // XLEN = 26: one subfield `SG` of 22 bytes.
    f[10..12].copy_from_slice(&26u16.to_le_bytes());
    f[12..14].copy_from_slice(b"SG");
    f[14..16].copy_from_slice(&22u16.to_le_bytes());
    let sub = format!("{toc_offset:016x}STARGZ");
    f[16..38].copy_from_slice(sub.as_bytes());
    // An empty final stored block; CRC-32 and size of nothing are zero.
    f[38..43].copy_from_slice(&[1, 0, 0, 0xff, 0xff]);
    f
}

/// The TOC offset a footer names, if `bytes` is an eStargz footer.
pub fn parse_footer(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != FOOTER_SIZE
        || bytes[..4] != [0x1f, 0x8b, 8, 4]
        || bytes[10..16] != [26, 0, b'S', b'G', 22, 0]
        || &bytes[32..38] != b"STARGZ"
    {
        return None;
    }
    let hex = std::str::from_utf8(&bytes[16..32]).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn footer_is_an_empty_gzip_member_naming_the_offset() {
        let f = footer(0x1234_5678);
        assert_eq!(parse_footer(&f), Some(0x1234_5678));
        let mut out = Vec::new();
        let mut d = flate2::read::GzDecoder::new(&f[..]);
        d.read_to_end(&mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(
            d.header().unwrap().extra().unwrap(),
            &f[12..38],
            "the extra field is the SG subfield"
        );
        assert_eq!(parse_footer(&f[1..]), None);
    }
}
