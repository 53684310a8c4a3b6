//! The spec and lock parsers take text teu did not write: arbitrary input never panics,
//! and a lock file teu writes reads back as the same lock.

use std::path::Path;

use proptest::prelude::*;
use teu_oci::Digest;
use teu_spec::lock::{LockedBase, LockedPlatform, Lockfile, LOCK_VERSION};
use teu_spec::Spec;

/// Spec-shaped text: real keys and tables mixed with noise.
fn spec_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[image]".to_string()),
        Just("[[layer]]".to_string()),
        Just("[config]".to_string()),
        Just("base = \"scratch\"".to_string()),
        Just("platforms = [\"linux/amd64\"]".to_string()),
        Just("copy = [{ src = \"a\", dest = \"/a\" }]".to_string()),
        Just("tars = [{ src = \"a.tar\", normalize = false }]".to_string()),
        Just("env = { A = \"b\" }".to_string()),
        Just("compression = \"zstd:3\"".to_string()),
        "[a-z_]{1,10} = \"\\PC{0,10}\"",
        "\\PC{0,30}",
    ];
    proptest::collection::vec(line, 0..10).prop_map(|l| l.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn arbitrary_specs_never_panic(text in "\\PC{0,200}") {
        let _ = Spec::parse(&text, "teu.toml", Path::new("."));
    }

    #[test]
    fn spec_like_text_never_panics_and_errors_say_where(text in spec_like()) {
        if let Err(e) = Spec::parse(&text, "teu.toml", Path::new(".")) {
            prop_assert!(e.to_string().starts_with("teu.toml"), "{e}");
        }
    }

    #[test]
    fn arbitrary_lock_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("teu.lock");
        std::fs::write(&p, &bytes).unwrap();
        let _ = Lockfile::load(&p);
    }

    #[test]
    fn lock_files_round_trip(
        refs in proptest::collection::vec("[a-z]{1,8}(/[a-z]{1,8})?:[a-z0-9]{1,5}", 0..3),
        seeds in proptest::collection::vec(any::<u8>(), 3),
        size in 0u64..1 << 30,
    ) {
        let digest = |i: usize| Digest::of(&[seeds[i % seeds.len()], i as u8]);
        let lock = Lockfile {
            version: LOCK_VERSION,
            bases: refs
                .iter()
                .enumerate()
                .map(|(i, r)| LockedBase {
                    reference: format!("docker://{r}"),
                    digest: digest(i),
                    media_type: teu_oci::media_type::OCI_INDEX.to_string(),
                    size,
                    platforms: vec![LockedPlatform {
                        platform: "linux/amd64".into(),
                        manifest: digest(i + 1),
                        config: digest(i + 2),
                    }],
                })
                .collect(),
        };
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("teu.lock");
        std::fs::write(&p, lock.to_toml()).unwrap();
        let back = Lockfile::load(&p).unwrap().unwrap();
        prop_assert_eq!(back.to_toml(), lock.to_toml());
    }
}
