//! `teu lock`, and builds that use, refuse or update a lock.

use crate::common::*;
use std::fs;
use std::path::Path;

fn make_base(dir: &Path, home: &Path, content: &[u8]) -> String {
    write(&dir.join("base-src/etc/version"), content);
    digest(&ok(teu(home).current_dir(dir).args([
        "build",
        "-q",
        "--copy",
        "base-src/etc/version:/etc/version",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        "-o",
        "oci:base:1",
    ])))
}

#[test]
fn lock_use_refuse_update() {
    let t = tempfile::tempdir().unwrap();
    let (d, home) = (t.path(), t.path().join("home"));
    let base_v1 = make_base(d, &home, b"1");
    write(&d.join("app.txt"), b"app");
    write(
        &d.join("teu.toml"),
        b"[image]\nbase = \"oci:base:1\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[[layer]]\ncopy = [{ src = \"app.txt\", dest = \"/app.txt\" }]\n",
    );

    // --locked without a lock file fails and says what to do.
    let (code, err) = fails(
        teu(&home)
            .current_dir(d)
            .args(["build", "--locked", "-o", "oci:out"]),
    );
    assert_eq!(code, 1);
    assert!(err.contains("run teu lock"), "{err}");

    ok(teu(&home).current_dir(d).args(["lock"]));
    let lock = fs::read_to_string(d.join("teu.lock")).unwrap();
    assert!(lock.contains("reference = \"oci:base:1\""), "{lock}");
    assert!(lock.contains(&format!("digest = \"{base_v1}\"")), "{lock}");
    assert_eq!(lock.matches("[[base.platform]]").count(), 2, "{lock}");
    assert!(lock.find("linux/amd64").unwrap() < lock.find("linux/arm64").unwrap());
    // Locking again changes nothing.
    let again = ok(teu(&home).current_dir(d).args(["lock"]));
    assert!(String::from_utf8_lossy(&again.stderr).contains("up to date"));
    assert_eq!(fs::read_to_string(d.join("teu.lock")).unwrap(), lock);

    let built_v1 = digest(&ok(teu(&home).current_dir(d).args([
        "build",
        "--locked",
        "-o",
        "oci:out:a",
    ])));

    // The base's tag moves.
    let base_v2 = make_base(d, &home, b"2");
    assert_ne!(base_v1, base_v2);

    // A plain build stays on the locked base, with a warning.
    let out = ok(teu(&home).current_dir(d).args(["build", "-o", "oci:out:b"]));
    assert_eq!(digest(&out), built_v1);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning: base oci:base:1 now resolves to") && err.contains(&base_v2),
        "{err}"
    );

    // --locked refuses.
    let (code, err) =
        fails(
            teu(&home)
                .current_dir(d)
                .args(["build", "--locked", "-o", "oci:out:c"]),
        );
    assert_eq!(code, 1);
    assert!(
        err.contains("teu.lock pins") && err.contains("teu lock --update"),
        "{err}"
    );

    // teu lock without --update keeps the pin; with it, the lock moves.
    ok(teu(&home).current_dir(d).args(["lock"]));
    assert_eq!(fs::read_to_string(d.join("teu.lock")).unwrap(), lock);
    ok(teu(&home).current_dir(d).args(["lock", "--update"]));
    let updated = fs::read_to_string(d.join("teu.lock")).unwrap();
    assert!(updated.contains(&base_v2), "{updated}");
    let built_v2 = digest(&ok(teu(&home).current_dir(d).args([
        "build",
        "--locked",
        "-o",
        "oci:out:d",
    ])));
    assert_ne!(built_v2, built_v1);

    // A lock lacking a platform the build needs fails under --locked.
    let (code, err) = fails(teu(&home).current_dir(d).args([
        "build",
        "--locked",
        "--platform",
        "linux/arm/v7",
        "-o",
        "oci:out:e",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("linux/arm/v7"), "{err}");
}

#[test]
fn a_broken_lock_file_names_its_line() {
    let t = tempfile::tempdir().unwrap();
    write(
        &t.path().join("teu.toml"),
        b"[[layer]]\ndirs = [{ path = \"/x\" }]\n",
    );
    write(
        &t.path().join("teu.lock"),
        b"version = 1\n[[base]]\nreference = \"oci:x\"\n",
    );
    let (code, err) = fails(
        teu(&t.path().join("home"))
            .current_dir(t.path())
            .args(["build"]),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("teu.lock:") && err.contains("missing field"),
        "{err}"
    );
}
