//! Arbitrary bytes against the image input and the HTTP server (the model loader's is
//! in `tests/models.rs`): neither may panic, and the server must keep answering. A
//! few hundred cases each here; the closing notes record longer runs
//! (`PROPTEST_CASES=N cargo test --release --test fuzz`, repeated).

mod common;

use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

/// A valid PNG of a digit, to mutate.
fn digit_png() -> &'static [u8] {
    static PNG: OnceLock<Vec<u8>> = OnceLock::new();
    PNG.get_or_init(|| {
        let img = image::GrayImage::from_fn(56, 56, |x, y| {
            image::Luma([if (x / 8 + y / 8) % 3 == 0 { 255 } else { 0 }])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    })
}

/// Sends `bytes` on a fresh connection, closes its sending side, and reads what
/// comes back (for at most two seconds).
fn send(addr: &str, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        panic!("the server stopped accepting")
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
}

/// The server still answers `GET /model`.
fn alive(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET /model HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// Requests built from pieces a real request has, in any order and with any bytes.
fn request_pieces() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"POST /predict HTTP/1.1\r\n".to_vec()),
        Just(b"GET / HTTP/1.1\r\n".to_vec()),
        Just(b"Host: x\r\n".to_vec()),
        Just(b"Content-Length: 5\r\n".to_vec()),
        Just(b"Content-Length: 99999999999999999999\r\n".to_vec()),
        Just(b"Content-Length: -1\r\n".to_vec()),
        Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
        Just(b"Connection: keep-alive\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"5\r\nabcde\r\n0\r\n\r\n".to_vec()),
        Just(digit_png().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|ps| ps.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary bytes, and a valid PNG with bytes flipped anywhere, never panic the
    /// image input: each is a picture or an error.
    #[test]
    fn image_input_never_panics(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        use nnlab::io::image_input::{Invert, digit_from_bytes};
        let _ = digit_from_bytes(&bytes, Invert::Auto);
        let mut png = digit_png().to_vec();
        let n = png.len();
        for (i, b) in flips {
            png[i % n] ^= b;
        }
        let _ = digit_from_bytes(&png, Invert::Auto);
    }
}

/// Arbitrary bytes and jumbled requests, sent to the real server, never stop it
/// answering.
#[test]
fn http_input_never_takes_the_server_down() {
    use proptest::test_runner::{Config, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let model = common::tiny_model(dir.path(), 28, 28);
    let (_server, addr) = common::serve(&model);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..300),
        request_pieces(),
    );
    runner
        .run(&strategy, |(junk, request)| {
            send(&addr, &junk);
            send(&addr, &request);
            prop_assert!(alive(&addr), "the server stopped answering");
            Ok(())
        })
        .unwrap();
}
