//! `nnlab serve`: the draw-a-digit page and its JSON routes, through a real server
//! process on 127.0.0.1 and plain HTTP/1.1 requests.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{http, serve};

/// A test digit as the page sends it: white ink on black, 280x280 PNG.
fn png_of(pixels: &[f32]) -> Vec<u8> {
    let img = image::GrayImage::from_fn(280, 280, |x, y| {
        image::Luma([(pixels[(y / 10 * 28 + x / 10) as usize] * 255.0).round() as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn the_page_answers_like_predict_and_refuses_bad_input() {
    let mnist = common::mnist(); // makes sure the CLI finds MNIST in the same folder
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.safetensors");
    let (ok, _, err) = common::nnlab(&[
        "train",
        "--preset",
        "xavier",
        "--hidden",
        "32",
        "--epochs",
        "1",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (_server, addr) = serve(&model);

    let (status, page) = http(&addr, "GET", "/", b"");
    assert_eq!(status, 200);
    assert!(
        page.contains("<canvas") && page.contains("predict"),
        "{page}"
    );

    let (status, info) = http(&addr, "GET", "/model", b"");
    assert_eq!(status, 200, "{info}");
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["dataset"], "mnist");
    assert_eq!(info["names"].as_array().unwrap().len(), 10);
    // the accuracy is written as its f32 prints (0.8854, not 0.8853999972343445)
    let acc = info["test_accuracy"].as_f64().unwrap();
    assert_eq!(
        acc,
        format!("{}", acc as f32).parse::<f64>().unwrap(),
        "{info}"
    );

    // the page's answer is `nnlab predict --image`'s, for the same picture
    for i in 0..5 {
        let png = png_of(mnist.test.images.row(i));
        let (status, body) = http(&addr, "POST", "/predict", &png);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let probs: Vec<f64> = v["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
        assert_eq!(v["input"].as_array().unwrap().len(), 784);
        let file = d.path().join(format!("{i}.png"));
        std::fs::write(&file, &png).unwrap();
        let (ok, out, err) = common::nnlab(&[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--image",
            file.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "{err}");
        let p: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["top"][0]["class"], p["top"][0]["class"], "digit {i}");
        let (a, b) = (
            v["top"][0]["probability"].as_f64().unwrap(),
            p["top"][0]["probability"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-6, "digit {i}: {a} vs {b}");
    }

    // bad input: clear JSON errors, and the server keeps serving
    let err_of = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["error"].as_str().unwrap().to_string()
    };
    let (status, body) = http(&addr, "POST", "/predict", b"not an image");
    assert_eq!(status, 400);
    assert!(err_of(&body).contains("cannot decode the image"), "{body}");
    let (status, body) = http(&addr, "POST", "/predict", b"");
    assert_eq!(status, 400);
    assert!(err_of(&body).contains("empty"), "{body}");
    let (status, body) = http(&addr, "POST", "/predict", &png_of(&[0.0; 784]));
    assert_eq!(status, 400);
    assert!(err_of(&body).contains("all one colour"), "{body}");
    let (status, body) = http(&addr, "GET", "/nope", b"");
    assert_eq!(status, 404);
    assert!(err_of(&body).contains("/nope"), "{body}");
    let (status, body) = http(&addr, "PUT", "/predict", b"x");
    assert_eq!(status, 405, "{body}");
    let (status, body) = http(&addr, "POST", "/predict", &vec![0u8; 5 << 20]);
    assert_eq!(status, 413, "{body}");
    let (status, _) = http(&addr, "GET", "/model", b"");
    assert_eq!(status, 200);
}

#[test]
fn serve_errors_name_the_problem() {
    let (ok, _, err) = common::nnlab(&["serve", "--model", "/nonexistent/m.safetensors"]);
    assert!(!ok && err.contains("/nonexistent/m.safetensors"), "{err}");
    // a port already taken
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let d = tempfile::tempdir().unwrap();
    let model = common::tiny_model(d.path(), 28, 28);
    let (ok, _, err) =
        common::nnlab(&["serve", "--model", model.to_str().unwrap(), "--port", &port]);
    assert!(!ok && err.contains("cannot listen on 127.0.0.1:"), "{err}");
    // a model for another image size
    let m4 = common::tiny_model(d.path(), 4, 4);
    let (ok, _, err) = common::nnlab(&["serve", "--model", m4.to_str().unwrap(), "--port", "0"]);
    assert!(!ok && err.contains("takes 4x4 images"), "{err}");
}

/// One `POST /predict` on a kept-alive connection: the answer's status.
fn post_on(s: &mut BufReader<TcpStream>, png: &[u8]) -> u16 {
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        png.len()
    );
    s.get_mut().write_all(head.as_bytes()).unwrap();
    s.get_mut().write_all(png).unwrap();
    let mut line = String::new();
    s.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        s.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    status
}

/// The server's resident memory in kB (Linux).
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap()
}

/// Against the real server on a random loopback port: a client that sends 3 of
/// 100,000 declared bytes and waits stalls nobody; a huge declared length, an image
/// bomb and two Content-Length headers each get a 4xx while the server keeps
/// answering; 20,000 requests from 50 connections get 20,000 answers of 200 with the
/// server's memory flat; SIGTERM ends it cleanly.
#[test]
fn the_server_holds_under_hostile_clients_and_load() {
    let d = tempfile::tempdir().unwrap();
    let model = common::tiny_model(d.path(), 28, 28);
    let (mut server, addr) = serve(&model);
    let png = png_of(common::mnist().test.images.row(0));

    // a slow client holds a connection with a body it never finishes
    let mut slow = TcpStream::connect(&addr).unwrap();
    write!(
        slow,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc"
    )
    .unwrap();
    let mut c = BufReader::new(TcpStream::connect(&addr).unwrap());
    // a server held up by the slow client fails the test instead of hanging it
    c.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(post_on(&mut c, &png), 200); // warm
    // (the median of 20, so that a test running beside this one on a busy machine
    // does not fail it; a stall would hold every request)
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            assert_eq!(post_on(&mut c, &png), 200);
            t.elapsed()
        })
        .collect();
    times.sort();
    assert!(times[10] < Duration::from_millis(100), "stalled: {times:?}");

    // hostile requests get a 4xx and the server goes on
    let (status, body) = raw(
        &addr,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000000000000\r\n\r\n",
    );
    assert_eq!(status, 413, "{body}");
    let (status, body) = raw(
        &addr,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw(
        &addr,
        "POST /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    );
    assert_eq!(status, 400);
    let mut bomb = image::GrayImage::new(1, 1);
    bomb.put_pixel(0, 0, image::Luma([9]));
    let mut bytes = std::io::Cursor::new(Vec::new());
    bomb.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
    let mut bomb = bytes.into_inner();
    bomb[16..20].copy_from_slice(&20000u32.to_be_bytes()); // IHDR width
    bomb[20..24].copy_from_slice(&20000u32.to_be_bytes()); // and height
    let (status, body) = http(&addr, "POST", "/predict", &bomb);
    assert!((400..500).contains(&status), "{status} {body}");
    assert_eq!(post_on(&mut c, &png), 200);

    // 20,000 requests from 50 kept-alive connections
    let pid = server.0.id();
    let mut first_rss = 0;
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let (addr, png) = (&addr, &png);
                sc.spawn(move || {
                    let mut s = BufReader::new(TcpStream::connect(addr).unwrap());
                    (0..400).filter(|_| post_on(&mut s, png) == 200).count()
                })
            })
            .collect();
        // memory after the first thousand or so answers
        std::thread::sleep(Duration::from_millis(300));
        first_rss = rss_kb(pid);
        let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(ok, 20_000);
    });
    let last_rss = rss_kb(pid);
    assert!(
        (last_rss as f64) < 1.2 * first_rss as f64,
        "memory grew from {first_rss} to {last_rss} kB"
    );
    drop(slow);

    // SIGTERM: stops accepting and exits cleanly
    // SAFETY: a signal to our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Sends raw request text on a fresh connection: (status, body).
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
