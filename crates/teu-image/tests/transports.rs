//! The transports below the CLI: every local sink and its source round-trip an image and
//! an index byte for byte; the selector picks the same image from a layout, an archive
//! and a registry (nested indexes, `arm64` = `arm64/v8`, `arm/v7` taking `arm/v6`); the
//! registry sink's plan against the real registry, blob by blob.

use std::collections::BTreeSet;
use std::sync::Arc;

use teu_image::transport::{self, Action, Context, Select, WriteOptions};
use teu_image::{Artifact, Image, ImageError, ImageIndex, Layer, StoreSource};
use teu_oci::{
    media_type, Descriptor, ImageConfig, Index, Manifest, Platform, Raw, Reference, RootFs,
};
use teu_registry::{Client, ClientOptions};
use teu_store::Store;
use teu_testkit::registry::{Auth, Registry};

/// An image for `platform` whose one layer holds `content` (the bytes need not be a tar:
/// sinks move blobs, they do not read them).
fn image(store: &Store, platform: &str, content: &[u8]) -> Image {
    let p: Platform = platform.parse().unwrap();
    let layer = store.put_bytes(content).unwrap();
    let layer_desc = Descriptor::new(
        media_type::OCI_LAYER_TAR,
        layer.clone(),
        content.len() as u64,
    );
    let config = Raw::encode(ImageConfig {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer.clone()],
        },
        ..ImageConfig::default()
    });
    let manifest = Raw::encode(Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.into()),
        artifact_type: None,
        config: config.descriptor(media_type::OCI_CONFIG),
        layers: vec![layer_desc.clone()],
        subject: None,
        annotations: Default::default(),
    });
    Image {
        manifest,
        config,
        layers: vec![Layer {
            descriptor: layer_desc,
            diff_id: layer,
            source: Arc::new(StoreSource(store.clone())),
        }],
    }
}

fn index_of(images: Vec<Image>, indexes: Vec<ImageIndex>) -> ImageIndex {
    let mut index = Index::new();
    index.manifests = images.iter().map(Image::descriptor).collect();
    for x in &indexes {
        index
            .manifests
            .push(x.index.descriptor(media_type::OCI_INDEX));
    }
    ImageIndex {
        index: Raw::encode(index),
        images,
        indexes,
    }
}

/// amd64, arm64/v8, and a nested index of arm/v7 and arm/v6.
fn nested_index(store: &Store) -> Artifact {
    let inner = index_of(
        vec![
            image(store, "linux/arm/v7", b"arm v7"),
            image(store, "linux/arm/v6", b"arm v6"),
        ],
        vec![],
    );
    Artifact::Index(index_of(
        vec![
            image(store, "linux/amd64", b"amd64"),
            image(store, "linux/arm64/v8", b"arm64"),
        ],
        vec![inner],
    ))
}

fn digests(a: &Artifact) -> BTreeSet<String> {
    a.blobs()
        .iter()
        .map(|(d, _)| d.digest.to_string())
        .collect()
}

fn local_refs(dir: &std::path::Path) -> Vec<Reference> {
    [
        format!("oci:{}:t1", dir.join("layout").display()),
        format!("oci-archive:{}:t1", dir.join("oci.tar").display()),
        format!("docker-archive:{}:app:t1", dir.join("docker.tar").display()),
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect()
}

#[test]
fn every_local_sink_round_trips_through_its_source() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path().join("store")).unwrap();
    let cx = Context::default();
    let artifacts = [
        Artifact::Image(image(&store, "linux/amd64", b"one image")),
        Artifact::Index(index_of(
            vec![
                image(&store, "linux/amd64", b"amd64 layer"),
                image(&store, "linux/arm64", b"arm64 layer"),
            ],
            vec![],
        )),
        nested_index(&store),
    ];
    for (n, a) in artifacts.iter().enumerate() {
        let dir = t.path().join(format!("out{n}"));
        for r in local_refs(&dir) {
            let report = transport::write(a, &r, &WriteOptions::default(), &cx).unwrap();
            assert_eq!(report.digest, a.digest(), "{r}");
            let back = transport::read(&r, &Select::All, &cx).unwrap();
            assert_eq!(back.digest(), a.digest(), "{r}");
            assert_eq!(back.root_bytes(), a.root_bytes(), "{r}");
            assert_eq!(digests(&back), digests(a), "{r}: every document and blob");
            // Every blob read back is the one written (read_verified checks digests).
            for (d, b) in back.blobs() {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut b.open(&d.digest).unwrap(), &mut bytes).unwrap();
                assert_eq!(teu_oci::Digest::of(&bytes), d.digest, "{r}");
            }
            // A second write of the same artifact into a layout moves nothing.
            if r.to_string().starts_with("oci:") {
                let again = transport::write(a, &r, &WriteOptions::default(), &cx).unwrap();
                assert!(
                    again.blobs.iter().all(|b| b.action == Action::Skip),
                    "{r}: {:?}",
                    again.blobs
                );
                assert_eq!(again.bytes_written, 0, "{r}");
            }
        }
    }
}

/// The digest of the image chosen for `platform`, or the error.
fn chosen(r: &Reference, platform: &str, cx: &Context) -> Result<String, ImageError> {
    let a = transport::read(r, &Select::Platform(platform.parse().unwrap()), cx)?;
    Ok(a.digest().to_string())
}

#[test]
fn one_selector_picks_the_same_image_from_a_layout_an_archive_and_a_registry() {
    let reg = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path().join("store")).unwrap();
    let cx = Context {
        registry: Some(Client::new(ClientOptions::default()).unwrap()),
        store: None,
    };
    let a = nested_index(&store);
    let mut refs = local_refs(t.path());
    refs.push(format!("{}/sel:1", reg.addr).parse().unwrap());
    for r in &refs {
        transport::write(&a, r, &WriteOptions::default(), &cx).unwrap();
    }
    let want = |p: &str| {
        let img = a
            .images()
            .into_iter()
            .find(|i| i.config.value.platform().to_string() == p)
            .unwrap();
        img.digest().to_string()
    };
    let cases = [
        ("linux/amd64", "linux/amd64"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/arm64/v8", "linux/arm64/v8"),
        // In the nested index: plain arm is arm/v7; an arm/v6 request gets v6 exactly.
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/v7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("linux/aarch64", "linux/arm64/v8"),
    ];
    for r in &refs {
        for (ask, expect) in cases {
            assert_eq!(chosen(r, ask, &cx).unwrap(), want(expect), "{r}: {ask}");
        }
        match chosen(r, "linux/s390x", &cx) {
            Err(ImageError::NoPlatform { available, .. }) => {
                for p in [
                    "linux/amd64",
                    "linux/arm64/v8",
                    "linux/arm/v7",
                    "linux/arm/v6",
                ] {
                    assert!(available.iter().any(|a| a == p), "{r}: {available:?}");
                }
            }
            other => panic!("{r}: expected NoPlatform, got {other:?}"),
        }
        // The whole index, nested one included, reads back the same everywhere.
        let all = transport::read(r, &Select::All, &cx).unwrap();
        assert_eq!(all.digest(), a.digest(), "{r}");
        assert_eq!(all.images().len(), 4, "{r}");
    }
}

#[test]
fn the_registry_sink_plans_skip_mount_stream_and_upload_blob_by_blob() {
    let reg = Registry::start(Auth::None);
    let other = Registry::start(Auth::None);
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path().join("store")).unwrap();
    let cx = Context {
        registry: Some(Client::new(ClientOptions::default()).unwrap()),
        store: None,
    };
    let opts = WriteOptions::default();
    let base = Artifact::Image(image(&store, "linux/amd64", b"base layer"));
    let (layer, config) = {
        let i = base.images()[0];
        (
            i.layers[0].descriptor.digest.clone(),
            i.manifest.value.config.digest.clone(),
        )
    };
    let dst: Reference = format!("{}/app:1", reg.addr).parse().unwrap();
    let actions = |a: &Artifact, r: &Reference| -> Vec<(String, Action)> {
        let sink = transport::open_sink(r, &opts, &cx).unwrap();
        sink.plan(a)
            .unwrap()
            .into_iter()
            .map(|p| (p.digest.to_string(), p.action))
            .collect()
    };
    // A fresh repository: the config and the layer are uploaded, in manifest order.
    assert_eq!(
        actions(&base, &dst),
        vec![
            (config.to_string(), Action::Upload),
            (layer.to_string(), Action::Upload)
        ]
    );
    let done = transport::write(&base, &dst, &opts, &cx).unwrap();
    assert!(done.blobs.iter().all(|b| b.action == Action::Upload));
    // Pushed again: everything is there.
    assert_eq!(
        actions(&base, &dst),
        vec![
            (config.to_string(), Action::Skip),
            (layer.to_string(), Action::Skip)
        ]
    );
    // Read from the registry, written to another repository of it: mounted.
    let remote = transport::read(&dst, &Select::All, &cx).unwrap();
    let sibling: Reference = format!("{}/copy:1", reg.addr).parse().unwrap();
    assert_eq!(
        actions(&remote, &sibling),
        vec![
            (config.to_string(), Action::Mount),
            (layer.to_string(), Action::Mount)
        ]
    );
    // ... and to another registry: the layer is streamed from the first; the config, read
    // already to resolve the image, is sent from memory.
    let elsewhere: Reference = format!("{}/app:1", other.addr).parse().unwrap();
    let planned = vec![
        (config.to_string(), Action::Upload),
        (layer.to_string(), Action::Stream),
    ];
    assert_eq!(actions(&remote, &elsewhere), planned);
    let streamed = transport::write(&remote, &elsewhere, &opts, &cx).unwrap();
    let moved: Vec<_> = streamed
        .blobs
        .iter()
        .map(|b| (b.digest.to_string(), b.action))
        .collect();
    assert_eq!(moved, planned);
    assert_eq!(
        transport::read(&elsewhere, &Select::All, &cx)
            .unwrap()
            .digest(),
        base.digest()
    );
    // A dry run asks and moves nothing.
    let fresh: Reference = format!("{}/dry:1", reg.addr).parse().unwrap();
    let dry = transport::write(
        &base,
        &fresh,
        &WriteOptions {
            dry_run: true,
            ..WriteOptions::default()
        },
        &cx,
    )
    .unwrap();
    assert!(dry.dry_run && dry.bytes_written == 0);
    assert!(transport::read(&fresh, &Select::All, &cx)
        .unwrap_err()
        .is_not_found());
}
