//! Parsers of untrusted text and bytes never panic, and what they accept round-trips:
//! image references, platforms, digests, and the JSON documents (index, manifest, config).

use proptest::prelude::*;
use teu_oci::{Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Raw, Reference};

fn digest_strategy() -> impl Strategy<Value = Digest> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(|b| Digest::of(&b))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn references_never_panic_and_round_trip(s in "\\PC{0,80}") {
        if let Ok(r) = s.parse::<Reference>() {
            let again: Reference = r.to_string().parse().expect("a displayed reference parses");
            prop_assert_eq!(again, r);
        }
    }

    #[test]
    fn reference_like_strings_round_trip(
        host in "(localhost|[a-z]{1,8}\\.[a-z]{2,3}|127\\.0\\.0\\.1)(:[0-9]{1,5})?",
        repo in "[a-z0-9]{1,6}((\\.|_|__|-+)[a-z0-9]{1,6}){0,2}(/[a-z0-9]{1,6}){0,2}",
        tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
    ) {
        let s = match &tag {
            Some(t) => format!("{host}/{repo}:{t}"),
            None => format!("{host}/{repo}"),
        };
        if let Ok(r) = s.parse::<Reference>() {
            prop_assert_eq!(r.to_string().parse::<Reference>().unwrap(), r);
        }
    }

    #[test]
    fn platforms_never_panic_and_round_trip(s in "\\PC{0,40}") {
        if let Ok(p) = s.parse::<Platform>() {
            prop_assert_eq!(p.to_string().parse::<Platform>().unwrap(), p.clone());
            // Normalizing is idempotent, and a platform always serves itself.
            prop_assert_eq!(p.normalized().normalized(), p.normalized());
            prop_assert_eq!(p.match_rank(&p), Some(0));
        }
    }

    #[test]
    fn digests_never_panic(s in "\\PC{0,80}") {
        if let Ok(d) = s.parse::<Digest>() {
            prop_assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        }
    }

    #[test]
    fn documents_from_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Raw::<Index>::parse(bytes.clone(), "index");
        let _ = Raw::<Manifest>::parse(bytes.clone(), "manifest");
        let _ = Raw::<ImageConfig>::parse(bytes, "config");
    }

    #[test]
    fn documents_from_arbitrary_json_never_panic(v in arbitrary_json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        let _ = Raw::<Index>::parse(bytes.clone(), "index");
        let _ = Raw::<Manifest>::parse(bytes.clone(), "manifest");
        let _ = Raw::<ImageConfig>::parse(bytes, "config");
    }

    #[test]
    fn valid_indexes_round_trip(
        digests in proptest::collection::vec(digest_strategy(), 0..6),
        sizes in proptest::collection::vec(0u64..1 << 40, 6),
    ) {
        let mut index = Index::new();
        for (d, size) in digests.iter().zip(sizes) {
            index.manifests.push(Descriptor::new(
                teu_oci::media_type::OCI_MANIFEST,
                d.clone(),
                size,
            ));
        }
        let raw = Raw::encode(index);
        let back = Raw::<Index>::parse(raw.bytes.clone(), "index").unwrap();
        // Encoding what was parsed gives the same bytes: teu's JSON is canonical.
        prop_assert_eq!(Raw::encode(back.value).bytes, raw.bytes);
    }
}

/// Any JSON value, nested a few levels, with OCI-looking keys sometimes.
fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("schemaVersion".to_string()),
                    Just("manifests".to_string()),
                    Just("mediaType".to_string()),
                    Just("digest".to_string()),
                    Just("size".to_string()),
                    Just("layers".to_string()),
                    Just("config".to_string()),
                    Just("rootfs".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
