//! Dataset folders: loading raw and gzip files of several shapes, and every bad input
//! the foundation issue lists, each with a clear error naming the file.

mod common;

use common::{gz, write_folder};
use nnlab::data::DatasetRef;
use nnlab::data::datasets::{FILE_NAMES, load_dir};
use nnlab::data::idx::{encode, read_images, read_labels};
use std::path::Path;

fn err(dir: &Path) -> String {
    load_dir(dir, "t", None).unwrap_err().to_string()
}

#[test]
fn loads_raw_and_gzip_folders_of_any_size() {
    for (h, w, gzip) in [(28, 28, false), (5, 7, true), (1, 1, false)] {
        let d = tempfile::tempdir().unwrap();
        write_folder(d.path(), 30, 12, h, w, 4);
        if gzip {
            for name in FILE_NAMES {
                let p = d.path().join(name);
                let raw = std::fs::read(&p).unwrap();
                std::fs::remove_file(&p).unwrap();
                std::fs::write(d.path().join(format!("{name}.gz")), gz(&raw)).unwrap();
            }
        }
        let s = load_dir(d.path(), "t", None).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (30, 12));
        assert_eq!(
            (s.train.height, s.train.width, s.train.features()),
            (h, w, h * w)
        );
        assert_eq!(s.train.classes(), 4);
        assert_eq!(s.train.class_counts(), vec![8, 8, 7, 7]);
        // pixels are byte / 255, row-major
        assert_eq!(s.train.images.data[1], 1.0 / 255.0);
        // the lab split: validation is the first examples
        let (tr, va) = s.train.split_validation(10).unwrap();
        assert_eq!((tr.len(), va.len()), (20, 10));
        assert_eq!(va.labels[..], s.train.labels[..10]);
        assert!(s.train.split_validation(30).is_err());
        // via DatasetRef too
        let r = DatasetRef::parse(d.path().to_str().unwrap()).unwrap();
        assert!(matches!(r, DatasetRef::Folder(_)));
    }
}

#[test]
fn wrong_magic_type_and_rank() {
    let d = tempfile::tempdir().unwrap();
    write_folder(d.path(), 4, 2, 3, 3, 2);
    let p = d.path().join(FILE_NAMES[0]);
    let mut b = std::fs::read(&p).unwrap();
    b[0] = 0x50;
    std::fs::write(&p, &b).unwrap();
    let e = err(d.path());
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("magic"),
        "{e}"
    );
    b[0] = 0;
    b[2] = 0x0C;
    std::fs::write(&p, &b).unwrap();
    assert!(err(d.path()).contains("0x0c (i32) is not supported"));
    // a label file (rank 1) where images (rank 3) belong
    std::fs::write(&p, encode(&[4], &[0; 4])).unwrap();
    assert!(err(d.path()).contains("expected rank 3"));
    let e = read_labels(&d.path().join(FILE_NAMES[2]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("expected rank 1"), "{e}");
}

#[test]
fn truncated_and_trailing_bytes() {
    let d = tempfile::tempdir().unwrap();
    write_folder(d.path(), 4, 2, 3, 3, 2);
    let p = d.path().join(FILE_NAMES[2]);
    let b = std::fs::read(&p).unwrap();
    std::fs::write(&p, &b[..b.len() - 3]).unwrap();
    let e = err(d.path());
    assert!(e.contains("t10k-images") && e.contains("truncated"), "{e}");
    let mut t = b.clone();
    t.extend_from_slice(&[1, 2]);
    std::fs::write(&p, &t).unwrap();
    assert!(err(d.path()).contains("trailing bytes"));
}

#[test]
fn count_mismatch_and_label_range() {
    let d = tempfile::tempdir().unwrap();
    write_folder(d.path(), 4, 2, 3, 3, 2);
    std::fs::write(d.path().join(FILE_NAMES[1]), encode(&[5], &[0; 5])).unwrap();
    let e = err(d.path());
    assert!(e.contains("5 labels") && e.contains("4 images"), "{e}");
    // a test label outside the training classes
    write_folder(d.path(), 4, 2, 3, 3, 2);
    std::fs::write(d.path().join(FILE_NAMES[3]), encode(&[2], &[0, 7])).unwrap();
    let e = err(d.path());
    assert!(
        e.contains("label 7 at index 1") && e.contains("0..2"),
        "{e}"
    );
    // a known dataset's class list bounds the labels
    write_folder(d.path(), 4, 2, 3, 3, 2);
    std::fs::write(d.path().join(FILE_NAMES[1]), encode(&[4], &[0, 1, 12, 3])).unwrap();
    let names = (0..10).map(|i| i.to_string()).collect();
    let e = load_dir(d.path(), "t", Some(names))
        .unwrap_err()
        .to_string();
    assert!(e.contains("label 12") && e.contains("0..10"), "{e}");
}

#[test]
fn corrupt_gzip_empty_file_directory_missing_file() {
    let d = tempfile::tempdir().unwrap();
    write_folder(d.path(), 4, 2, 3, 3, 2);
    let p = d.path().join(FILE_NAMES[0]);
    let z = gz(&std::fs::read(&p).unwrap());
    std::fs::remove_file(&p).unwrap();
    let gzp = d.path().join(format!("{}.gz", FILE_NAMES[0]));
    std::fs::write(&gzp, &z[..z.len() / 2]).unwrap();
    let e = err(d.path());
    assert!(e.contains(".gz") && e.contains("gzip"), "{e}");
    std::fs::write(&gzp, b"").unwrap();
    assert!(err(d.path()).contains("empty file"));
    std::fs::remove_file(&gzp).unwrap();
    std::fs::create_dir(&p).unwrap();
    let e = read_images(&p).unwrap_err().to_string();
    assert!(e.contains("is a folder"), "{e}");
    std::fs::remove_dir(&p).unwrap();
    let e = err(d.path());
    assert!(e.contains("has no train-images-idx3-ubyte"), "{e}");
}

#[test]
fn unknown_dataset_names() {
    let e = DatasetRef::parse("cifar10").unwrap_err().to_string();
    assert!(e.contains("cifar10") && e.contains("fashion-mnist"), "{e}");
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = DatasetRef::parse(f.path().to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is a file"), "{e}");
}

/// A loop of symlinks in place of a data file is reported as such, not as a missing
/// file.
#[test]
fn a_symlink_loop_is_named_as_one() {
    let d = tempfile::tempdir().unwrap();
    write_folder(d.path(), 5, 3, 4, 4, 3);
    let labels = d.path().join(FILE_NAMES[3]);
    std::fs::remove_file(&labels).unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    std::os::unix::fs::symlink(&a, &labels).unwrap();
    let e = err(d.path());
    assert!(e.contains("symbolic links") && !e.contains("has no"), "{e}");
}
