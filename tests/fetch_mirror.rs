//! The fetch path for real, against an HTTP server on 127.0.0.1 started by the test:
//! good files, a 404, a body cut short, wrong bytes; the checksum, the atomic cache
//! writes and the "every source failed" message.

mod common;

use common::gz;
use nnlab::data::fetch::{FetchOptions, FileSpec, RemoteSpec, ensure, sha256_hex};
use nnlab::data::idx::encode;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

fn raw_files() -> Vec<Vec<u8>> {
    vec![
        encode(&[6, 4, 4], &(0..96).map(|i| i as u8).collect::<Vec<_>>()),
        encode(&[6], &[0, 1, 2, 0, 1, 2]),
        encode(
            &[3, 4, 4],
            &(0..48).map(|i| (i * 3) as u8).collect::<Vec<_>>(),
        ),
        encode(&[3], &[2, 1, 0]),
    ]
}

fn spec(files: &[Vec<u8>]) -> &'static RemoteSpec {
    let mk = |i: usize| FileSpec {
        name: NAMES[i],
        sha256: Box::leak(sha256_hex(&files[i]).into_boxed_str()),
    };
    Box::leak(Box::new(RemoteSpec {
        id: "toy",
        files: [mk(0), mk(1), mk(2), mk(3)],
        mirrors: &[],
        npm: None,
        system: None,
    }))
}

/// Serves `/good/NAME.gz` (the file, gzipped), `/trunc/...` (half the body, then
/// closes), `/wrong/...` (other bytes), anything else 404. Runs until the test ends;
/// bounded to `max_requests`.
fn serve(files: Vec<Vec<u8>>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut s) = stream else { continue };
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut parts = path.trim_start_matches('/').splitn(2, '/');
            let (kind, file) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let idx = NAMES.iter().position(|n| file == format!("{n}.gz"));
            let body = idx.map(|i| gz(&files[i]));
            let _ = match (kind, body) {
                ("good", Some(b)) => write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .and_then(|_| s.write_all(&b)),
                ("trunc", Some(b)) => write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    b.len()
                )
                .and_then(|_| s.write_all(&b[..b.len() / 2])),
                ("wrong", Some(_)) => {
                    let b = gz(b"these are not the bytes you are looking for");
                    write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        b.len()
                    )
                    .and_then(|_| s.write_all(&b))
                }
                _ => write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"
                ),
            };
            let _ = s.flush();
        }
    });
    format!("http://{addr}")
}

fn opts(cache: &Path, mirrors: Vec<String>) -> FetchOptions {
    let mut o = FetchOptions::new(cache);
    o.mirrors = Some(mirrors);
    o.npm = false;
    o.system = false;
    o.quiet = true;
    o.connect_timeout = Duration::from_secs(2);
    o
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            NAMES.contains(&name.as_str()),
            "stray file {name} in the cache"
        );
    }
}

#[test]
fn bad_mirrors_are_skipped_and_the_good_one_used() {
    let files = raw_files();
    let spec = spec(&files);
    let base = serve(files.clone(), 64);
    let cache = tempfile::tempdir().unwrap();
    let mirrors = ["trunc", "missing", "wrong", "good"]
        .map(|k| format!("{base}/{k}/"))
        .to_vec();
    let dir = ensure(spec, &opts(cache.path(), mirrors.clone())).unwrap();
    for (i, n) in NAMES.iter().enumerate() {
        assert_eq!(
            std::fs::read(dir.join(n)).unwrap(),
            files[i],
            "{n} stored raw and verified"
        );
    }
    no_temp_files(&dir);

    // a cached file that fails its checksum is fetched again
    std::fs::write(dir.join(NAMES[1]), b"garbage").unwrap();
    ensure(spec, &opts(cache.path(), mirrors)).unwrap();
    assert_eq!(std::fs::read(dir.join(NAMES[1])).unwrap(), files[1]);

    // everything cached: no source is needed at all
    ensure(spec, &opts(cache.path(), vec![])).unwrap();
}

#[test]
fn every_source_failing_gives_one_clear_message() {
    let files = raw_files();
    let spec = spec(&files);
    let base = serve(files, 16);
    let cache = tempfile::tempdir().unwrap();
    let mirrors = ["trunc", "missing", "wrong"]
        .map(|k| format!("{base}/{k}/"))
        .to_vec();
    let e = ensure(spec, &opts(cache.path(), mirrors))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("could not get toy file train-images-idx3-ubyte"),
        "{e}"
    );
    assert!(e.contains("/trunc/train-images-idx3-ubyte.gz"), "{e}");
    assert!(e.contains("HTTP 404"), "{e}");
    assert!(e.contains("wrong bytes (SHA-256"), "{e}");
    assert!(
        e.contains("ended after") || e.contains("connection broke"),
        "{e}"
    );
    assert!(e.contains("by hand"), "{e}");
    // nothing that could later pass as good was left behind
    no_temp_files(&cache.path().join("toy"));
    assert_eq!(
        std::fs::read_dir(cache.path().join("toy")).unwrap().count(),
        0
    );
}

#[test]
fn unreachable_mirror_fails_fast() {
    let files = raw_files();
    let spec = spec(&files);
    // a port nothing listens on
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let cache = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    let e = ensure(spec, &opts(cache.path(), vec![format!("http://{addr}/")]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("request failed"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn cache_folder_that_cannot_be_written() {
    let files = raw_files();
    let spec = spec(&files);
    // a cache "folder" below a regular file cannot be created, even by root
    let f = tempfile::NamedTempFile::new().unwrap();
    let e = ensure(spec, &opts(&f.path().join("cache"), vec![]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("writable cache folder") && e.contains("--data-dir"),
        "{e}"
    );
}
