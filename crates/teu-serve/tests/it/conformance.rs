//! Protocol tests modelled on the distribution-spec conformance suite's four groups
//! (push, pull, content discovery, content management), each run on both backends.

use serde_json::{json, Value};

use crate::harness::*;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $( #[test] fn $name() { super::$name(super::Backend::Fs) } )*
        }
        mod s3 {
            $( #[test] fn $name() { super::$name(super::Backend::S3) } )*
        }
    };
}

on_both_backends!(
    push_monolithic_single_post_and_chunked,
    push_errors_are_the_specs,
    pull_blobs_with_ranges,
    sha512_blobs_and_manifests,
    manifests_are_verified_and_stored_verbatim,
    discovery_tags_catalog_referrers,
    management_deletes_and_mounts,
);

fn push_monolithic_single_post_and_chunked(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let r = c.get(s.url("/v2/")).send().unwrap();
    assert_eq!(r.status(), 200);

    // Monolithic: POST then PUT with the body.
    let d = push_blob(&s, "a/b", b"monolithic");
    let r = c.head(s.url(&format!("/v2/a/b/blobs/{d}"))).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "content-length"), "10");
    assert_eq!(hdr(&r, "docker-content-digest"), d);

    // A single POST with the digest.
    let body = b"single post".to_vec();
    let d = sha256(&body);
    let r = c
        .post(s.url(&format!("/v2/a/b/blobs/uploads/?digest={d}")))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(hdr(&r, "location"), format!("/v2/a/b/blobs/{d}"));
    assert_eq!(
        c.get(s.url(&format!("/v2/a/b/blobs/{d}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap(),
        &b"single post"[..]
    );

    // Chunked, with a status check and an out-of-order chunk in between.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = sha256(&data);
    let r = c.post(s.url("/v2/a/b/blobs/uploads/")).send().unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(hdr(&r, "range"), "0-0");
    let loc = hdr(&r, "location");
    let r = c
        .patch(s.url(&loc))
        .header("Content-Range", "0-99999")
        .header("Content-Type", "application/octet-stream")
        .body(data[..100_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(hdr(&r, "range"), "0-99999");
    let loc = hdr(&r, "location");
    // Out of order: 416, and the session is unchanged.
    let r = c
        .patch(s.url(&loc))
        .header("Content-Range", "200000-299999")
        .body(data[200_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = c.get(s.url(&loc)).send().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(hdr(&r, "range"), "0-99999");
    let r = c
        .patch(s.url(&loc))
        .header("Content-Range", "100000-199999")
        .body(data[100_000..200_000].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    // The last chunk streamed without Content-Range, then an empty PUT.
    let r = c
        .patch(s.url(&loc))
        .body(data[200_000..].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(hdr(&r, "range"), "0-299999");
    let r = c.put(s.url(&format!("{loc}?digest={d}"))).send().unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(hdr(&r, "docker-content-digest"), d);
    let got = c
        .get(s.url(&format!("/v2/a/b/blobs/{d}")))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(got.as_ref(), &data[..]);

    // The session is gone once committed.
    let r = c.get(s.url(&loc)).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "BLOB_UPLOAD_UNKNOWN");
}

fn push_errors_are_the_specs(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    // A wrong digest: 400 DIGEST_INVALID, never a 500.
    let r = c.post(s.url("/v2/e/blobs/uploads/")).send().unwrap();
    let loc = hdr(&r, "location");
    let r = c
        .put(s.url(&format!("{loc}?digest={}", sha256(b"other"))))
        .body(b"data".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(r), "DIGEST_INVALID");
    for bad in ["sha256:1234", "md5:abc", "nonsense", "sha256:ZZ"] {
        let r = c.post(s.url("/v2/e/blobs/uploads/")).send().unwrap();
        let loc = hdr(&r, "location");
        let r = c
            .put(s.url(&format!("{loc}?digest={bad}")))
            .body(b"data".to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(code(r), "DIGEST_INVALID", "{bad}");
        let r = c.get(s.url(&format!("/v2/e/blobs/{bad}"))).send().unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let r = c
            .post(s.url(&format!("/v2/e/blobs/uploads/?digest={bad}")))
            .body(b"x".to_vec())
            .send()
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // PUT without a digest.
    let r = c.post(s.url("/v2/e/blobs/uploads/")).send().unwrap();
    let loc = hdr(&r, "location");
    let r = c.put(s.url(&loc)).body(b"x".to_vec()).send().unwrap();
    assert_eq!(r.status(), 400);
    // Unknown and foreign sessions.
    let r = c
        .get(s.url("/v2/e/blobs/uploads/0123456789abcdef0123456789abcdef"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "BLOB_UPLOAD_UNKNOWN");
    let r = c.post(s.url("/v2/e/blobs/uploads/")).send().unwrap();
    let id = hdr(&r, "docker-upload-uuid");
    let r = c
        .get(s.url(&format!("/v2/other/blobs/uploads/{id}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // Invalid names.
    let r = c.get(s.url("/v2/UPPER/tags/list")).send().unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(code(r), "NAME_INVALID");
}

fn pull_blobs_with_ranges(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let d = push_blob(&s, "r", &data);
    let get = |range: &str| {
        c.get(s.url(&format!("/v2/r/blobs/{d}")))
            .header("Range", range)
            .send()
            .unwrap()
    };
    let r = get("bytes=10-19");
    assert_eq!(r.status(), 206);
    assert_eq!(hdr(&r, "content-range"), "bytes 10-19/1000");
    assert_eq!(r.bytes().unwrap().as_ref(), &data[10..20]);
    let r = get("bytes=990-");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &data[990..]);
    let r = get("bytes=-5");
    assert_eq!(r.bytes().unwrap().as_ref(), &data[995..]);
    for bad in [
        "bytes=1000-",
        "bytes=20-10",
        "bytes=abc",
        "lines=0-1",
        "bytes=0-1,5-6",
    ] {
        let r = get(bad);
        assert_eq!(r.status(), 416, "{bad}");
        assert_eq!(hdr(&r, "content-range"), "bytes */1000", "{bad}");
    }
    let r = c
        .get(s.url(&format!("/v2/r/blobs/{}", sha256(b"absent"))))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "BLOB_UNKNOWN");
    let r = c
        .head(s.url(&format!("/v2/r/blobs/{}", sha256(b"absent"))))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    // A blob pushed to one repository is not served from another.
    let r = c
        .get(s.url(&format!("/v2/elsewhere/blobs/{d}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

fn sha512_blobs_and_manifests(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let data = b"sha512 content".to_vec();
    let d = sha512(&data);
    let r = c
        .post(s.url(&format!("/v2/five/blobs/uploads/?digest={d}")))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(s.url(&format!("/v2/five/blobs/{d}"))).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hdr(&r, "docker-content-digest"), d);
    assert_eq!(r.bytes().unwrap().as_ref(), &data[..]);
    // A manifest addressed by its sha512 digest.
    let config = b"{}";
    push_blob(&s, "five", config);
    let m = manifest(config, &[], json!({}));
    let md = sha512(&m);
    let r = put_manifest(&s, "five", &md, &m);
    assert_eq!(r.status(), 201);
    assert_eq!(hdr(&r, "docker-content-digest"), md);
    let r = c
        .get(s.url(&format!("/v2/five/manifests/{md}")))
        .send()
        .unwrap();
    assert_eq!(r.bytes().unwrap().as_ref(), &m[..]);
}

fn manifests_are_verified_and_stored_verbatim(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"layer bytes";
    // Missing blobs: MANIFEST_BLOB_UNKNOWN.
    let m = manifest(config, &[layer], json!({}));
    let r = put_manifest(&s, "m", "v1", &m);
    assert_eq!(r.status(), 400);
    assert_eq!(code(r), "MANIFEST_BLOB_UNKNOWN");
    push_blob(&s, "m", config);
    let r = put_manifest(&s, "m", "v1", &m);
    assert_eq!(
        code(r),
        "MANIFEST_BLOB_UNKNOWN",
        "the layer is still missing"
    );
    push_blob(&s, "m", layer);
    // Odd but valid JSON formatting is kept byte for byte.
    let mut odd = b"  ".to_vec();
    odd.extend_from_slice(&m);
    odd.extend_from_slice(b"\n\n");
    let r = put_manifest(&s, "m", "v1", &odd);
    assert_eq!(r.status(), 201);
    let d = sha256(&odd);
    assert_eq!(hdr(&r, "docker-content-digest"), d);
    assert_eq!(hdr(&r, "location"), format!("/v2/m/manifests/{d}"));
    for reference in ["v1", d.as_str()] {
        let r = c
            .get(s.url(&format!("/v2/m/manifests/{reference}")))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            hdr(&r, "content-type"),
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(hdr(&r, "docker-content-digest"), d);
        assert_eq!(r.bytes().unwrap().as_ref(), &odd[..]);
        let r = c
            .head(s.url(&format!("/v2/m/manifests/{reference}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(hdr(&r, "content-length"), odd.len().to_string());
    }
    // A digest reference that does not match the body.
    let r = put_manifest(&s, "m", &sha256(b"not it"), &m);
    assert_eq!(r.status(), 400);
    assert_eq!(code(r), "DIGEST_INVALID");
    let r = put_manifest(&s, "m", "sha256:nothex", &m);
    assert_eq!(r.status(), 400);
    assert_eq!(code(r), "DIGEST_INVALID");
    // Not a manifest.
    let r = put_manifest(&s, "m", "v2", b"{not json");
    assert_eq!(code(r), "MANIFEST_INVALID");
    // Unknown references.
    let r = c.get(s.url("/v2/m/manifests/nope")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "MANIFEST_UNKNOWN");
    // A Docker manifest list over a pushed child; a missing child is refused.
    let child = sha256(&odd);
    let list = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child, "size": odd.len(),
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    })).unwrap();
    let r = c
        .put(s.url("/v2/m/manifests/list"))
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        )
        .body(list)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c.get(s.url("/v2/m/manifests/list")).send().unwrap();
    assert_eq!(
        hdr(&r, "content-type"),
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(b"x"), "size": 1}],
    })).unwrap();
    let r = c
        .put(s.url("/v2/m/manifests/bad"))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .body(bad)
        .send()
        .unwrap();
    assert_eq!(code(r), "MANIFEST_BLOB_UNKNOWN");
}

fn discovery_tags_catalog_referrers(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let config = b"{}";
    let d = push_image(&s, "d/repo", "b", config, &[b"l1"]);
    for t in ["c", "a"] {
        assert_eq!(
            put_manifest(&s, "d/repo", t, &manifest(config, &[b"l1"], json!({}))).status(),
            201
        );
    }
    let tags = |q: &str| {
        let r = c
            .get(s.url(&format!("/v2/d/repo/tags/list{q}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        let link = hdr(&r, "link");
        let v: Value = r.json().unwrap();
        (v["tags"].clone(), link)
    };
    assert_eq!(tags("").0, json!(["a", "b", "c"]));
    let (t, link) = tags("?n=1");
    assert_eq!(t, json!(["a"]));
    assert_eq!(link, "</v2/d/repo/tags/list?n=1&last=a>; rel=\"next\"");
    let (t, _) = tags("?n=1&last=a");
    assert_eq!(t, json!(["b"]));
    let (t, link) = tags("?n=5&last=b");
    assert_eq!((t, link.as_str()), (json!(["c"]), ""));
    assert_eq!(tags("?n=0").0, json!([]));
    let r = c.get(s.url("/v2/unknown/tags/list")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "NAME_UNKNOWN");

    push_image(&s, "other", "x", config, &[]);
    let v: Value = c.get(s.url("/v2/_catalog")).send().unwrap().json().unwrap();
    assert_eq!(v["repositories"], json!(["d/repo", "other"]));
    let r = c.get(s.url("/v2/_catalog?n=1")).send().unwrap();
    assert!(hdr(&r, "link").contains("last=d/repo"));

    // Referrers: an artifact manifest with a subject.
    let empty = b"{}";
    let art = |artifact_type: &str, note: &str| {
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha256(empty), "size": 2},
            "layers": [],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1},
            "annotations": {"note": note},
        })).unwrap()
    };
    let sig = art("application/vnd.example.sig", "one");
    let sbom = art("application/spdx+json", "two");
    for m in [&sig, &sbom] {
        let r = put_manifest(&s, "d/repo", &sha256(m), m);
        assert_eq!(r.status(), 201);
        assert_eq!(hdr(&r, "oci-subject"), d);
    }
    let r = c
        .get(s.url(&format!("/v2/d/repo/referrers/{d}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        hdr(&r, "content-type"),
        "application/vnd.oci.image.index.v1+json"
    );
    let v: Value = r.json().unwrap();
    let mut found: Vec<String> = v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    found.sort();
    let mut want = vec![sha256(&sig), sha256(&sbom)];
    want.sort();
    assert_eq!(found, want);
    let r = c
        .get(s.url(&format!(
            "/v2/d/repo/referrers/{d}?artifactType=application/spdx%2Bjson"
        )))
        .send()
        .unwrap();
    assert_eq!(hdr(&r, "oci-filters-applied"), "artifactType");
    let v: Value = r.json().unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], sha256(&sbom));
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(v["manifests"][0]["annotations"]["note"], "two");
    // No referrers: an empty index, not a 404.
    let v: Value = c
        .get(s.url(&format!("/v2/d/repo/referrers/{}", sha256(b"none"))))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["manifests"], json!([]));
    let r = c
        .get(s.url("/v2/d/repo/referrers/sha256:bad"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // Deleting a referrer removes it from the list.
    let r = c
        .delete(s.url(&format!("/v2/d/repo/manifests/{}", sha256(&sig))))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = c
        .get(s.url(&format!("/v2/d/repo/referrers/{d}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
}

fn management_deletes_and_mounts(b: Backend) {
    let st = Storage::new(b);
    let s = Server::start(&st);
    let c = client();
    let config = b"{\"c\":1}";
    let layer = b"mountable layer";
    let d = push_image(&s, "src", "t1", config, &[layer]);
    assert_eq!(
        put_manifest(&s, "src", "t2", &manifest(config, &[layer], json!({}))).status(),
        201
    );
    // Mount into another repository: 201, then the blob is served there.
    let ld = sha256(layer);
    let r = c
        .post(s.url(&format!("/v2/dst/blobs/uploads/?mount={ld}&from=src")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(hdr(&r, "location"), format!("/v2/dst/blobs/{ld}"));
    assert_eq!(
        c.head(s.url(&format!("/v2/dst/blobs/{ld}")))
            .send()
            .unwrap()
            .status(),
        200
    );
    // From a repository that lacks it: 202 and a session to upload into instead.
    let r = c
        .post(s.url(&format!("/v2/dst2/blobs/uploads/?mount={ld}&from=nothere")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(hdr(&r, "location").starts_with("/v2/dst2/blobs/uploads/"));
    // Cancel that session.
    let loc = hdr(&r, "location");
    assert_eq!(c.delete(s.url(&loc)).send().unwrap().status(), 204);
    assert_eq!(c.get(s.url(&loc)).send().unwrap().status(), 404);

    // Delete a tag: the other tag still resolves.
    let r = c.delete(s.url("/v2/src/manifests/t1")).send().unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(
        c.get(s.url("/v2/src/manifests/t1"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(s.url("/v2/src/manifests/t2"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Delete the manifest by digest: gone, and so are its tags.
    assert_eq!(
        c.delete(s.url(&format!("/v2/src/manifests/{d}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    let r = c
        .get(s.url(&format!("/v2/src/manifests/{d}")))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        c.get(s.url("/v2/src/manifests/t2"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(s.url(&format!("/v2/src/manifests/{d}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    // Delete a blob.
    assert_eq!(
        c.delete(s.url(&format!("/v2/src/blobs/{ld}")))
            .send()
            .unwrap()
            .status(),
        202
    );
    let r = c.get(s.url(&format!("/v2/src/blobs/{ld}"))).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(code(r), "BLOB_UNKNOWN");
    assert_eq!(
        c.delete(s.url(&format!("/v2/src/blobs/{ld}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    // The mounted copy in dst is unaffected.
    assert_eq!(
        c.get(s.url(&format!("/v2/dst/blobs/{ld}")))
            .send()
            .unwrap()
            .status(),
        200
    );
}
