//! The spec's grammar for repository names and tags, checked by hand (small loops
//! instead of a regex engine in the binary); repository names by teu-oci's rule.

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`, ≤ 255 bytes:
/// the same rule teu's reference parser applies ([`teu_oci::valid_repository`]).
pub fn valid_repo(name: &str) -> bool {
    teu_oci::valid_repository(name)
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_spec() {
        for ok in ["a", "library/alpine", "a.b_c__d---e/f0", "x/manifests/y"] {
            assert!(valid_repo(ok), "{ok}");
        }
        for bad in [
            "", "A", "a//b", "-a", "a-", "a___b", "a..b", "a/_tags", "a/",
        ] {
            assert!(!valid_repo(bad), "{bad}");
        }
        assert!(valid_tag("v1.0_rc-1") && valid_tag("_x"));
        assert!(!valid_tag(".x") && !valid_tag("a/b") && !valid_tag(&"a".repeat(129)));
    }
}
