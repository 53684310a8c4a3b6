//! The tar code meets bytes teu did not write: arbitrary tarballs never panic the
//! importer, and the layer header teu writes reads back as what it says (name, size,
//! mode, mtime), whatever the name's length.

use std::sync::Arc;

use proptest::prelude::*;
use teu_layer::entry::{Content, Defaults, Entry, Kind, LayerTree, Meta, Priority};
use teu_layer::source::add_tar;
use teu_layer::tar_writer;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn headers_read_back_as_written(
        // UTF-8 names without a newline: the tar crate (the reader here) splits PAX
        // records at newlines and drops non-UTF-8 paths; GNU tar and umoci read both, and
        // teu's raw-byte names are checked against them in the integration tests.
        name in "[^\u{0}/\n]{1,120}",
        size in 0u64..(1 << 40),
        mode in 0u32..0o7777,
        mtime in 0u64..(1 << 33),
    ) {
        // Names are paths without NUL; teu writes a PAX record when ustar cannot hold it.
        let name = name.into_bytes();
        let entry = Entry {
            path: name.clone(),
            kind: Kind::File(Content::Path {
                path: "unused".into(),
                size,
                stat: None,
            }),
            meta: Meta { mode, uid: 0, gid: 0, mtime },
            priority: Priority::Explicit,
            origin: Arc::from("test"),
            inode: None,
            xattrs: Vec::new(),
        };
        let mut bytes = tar_writer::encode_header(&entry);
        // The header block(s) alone; give the archive a body of `size` zeros lazily by
        // reading only the first entry's header.
        bytes.extend(std::iter::repeat_n(0u8, 1024));
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut entries = ar.entries().unwrap();
        let e = entries.next().unwrap().unwrap();
        prop_assert_eq!(&e.path_bytes()[..], &name[..]);
        // Past ustar's 8 GiB the size is in a PAX record (the ustar field is then a
        // placeholder): what a reader sees is the record's.
        prop_assert_eq!(e.size(), size);
        prop_assert_eq!(e.header().mode().unwrap(), mode);
        prop_assert_eq!(e.header().mtime().unwrap(), mtime);
    }

    #[test]
    fn arbitrary_tarballs_never_panic_the_importer(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("t.tar");
        std::fs::write(&src, &bytes).unwrap();
        let mut tree = LayerTree::new();
        let _ = add_tar(&mut tree, &src, "/", &Defaults { mtime: 0 }, d.path(), Arc::from("test"));
    }

    #[test]
    fn tar_shaped_tarballs_never_panic_the_importer(
        entries in proptest::collection::vec(
            ("[a-z./]{1,20}", proptest::collection::vec(any::<u8>(), 0..64), 0u8..8),
            0..6,
        ),
    ) {
        let mut b = tar::Builder::new(Vec::new());
        for (name, body, kind) in &entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(match kind {
                0 => tar::EntryType::Regular,
                1 => tar::EntryType::Directory,
                2 => tar::EntryType::Symlink,
                3 => tar::EntryType::Link,
                4 => tar::EntryType::Fifo,
                5 => tar::EntryType::GNUSparse,
                6 => tar::EntryType::XHeader,
                _ => tar::EntryType::Char,
            });
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            let _ = h.set_link_name("../x");
            let _ = b.append_data(&mut h, name, &body[..]);
        }
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("t.tar");
        std::fs::write(&src, b.into_inner().unwrap()).unwrap();
        let mut tree = LayerTree::new();
        let _ = add_tar(&mut tree, &src, "/opt", &Defaults { mtime: 0 }, d.path(), Arc::from("test"));
    }
}
