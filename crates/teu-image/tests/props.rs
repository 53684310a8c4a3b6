//! Archives and layouts are input teu did not write: whatever bytes they hold, reading
//! them gives an image or an error, never a panic or a hang.

use proptest::prelude::*;
use teu_image::transport::{self, Context, Select};

fn tar_of(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        if b.append_data(&mut h, name, &body[..]).is_err() {
            continue;
        }
    }
    b.into_inner().unwrap()
}

fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("index.json".to_string()),
        Just("oci-layout".to_string()),
        Just("manifest.json".to_string()),
        "blobs/sha256/[0-9a-f]{64}",
        "[a-z]{1,8}(/layer\\.tar)?",
    ]
}

fn member_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        Just(br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}]}"#.to_vec()),
        Just(br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l/layer.tar"]}]"#.to_vec()),
        Just(b"[]".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_archive_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar");
        std::fs::write(&p, &bytes).unwrap();
        let cx = Context::default();
        for r in [format!("oci-archive:{}", p.display()), format!("docker-archive:{}", p.display())] {
            let _ = transport::read(&r.parse().unwrap(), &Select::All, &cx);
        }
    }

    #[test]
    fn archive_shaped_tars_never_panic(entries in proptest::collection::vec((member_name(), member_body()), 0..6)) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar");
        std::fs::write(&p, tar_of(&entries)).unwrap();
        let cx = Context::default();
        for r in [format!("oci-archive:{}", p.display()), format!("docker-archive:{}", p.display())] {
            let r = r.parse().unwrap();
            let _ = transport::read(&r, &Select::All, &cx);
            let _ = transport::read(&r, &Select::Platform("linux/amd64".parse().unwrap()), &cx);
        }
    }

    #[test]
    fn arbitrary_layout_files_never_panic(layout in member_body(), index in member_body()) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("oci-layout"), &layout).unwrap();
        std::fs::write(d.path().join("index.json"), &index).unwrap();
        let r = format!("oci:{}", d.path().display()).parse().unwrap();
        let _ = transport::read(&r, &Select::All, &Context::default());
    }
}
