//! The drawing page in a real browser: `nnlab serve` on a free loopback port, the page
//! opened in headless Chromium, test digits drawn on its canvas with the mouse (the
//! DevTools protocol's input events, over `--remote-debugging-pipe`), and the answer the
//! page shows read back. A screenshot of the last answer is left in
//! `target/browser/serve_page.png`.
//!
//! Chromium comes from Debian's `chromium` package: `.ci/run` installs it. Where it is
//! missing the test says so and passes, unless `CI` is set, where it fails.

mod common;

use serde_json::{Value, json};
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn find_chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| {
            Command::new("sh")
                .args(["-c", &format!("command -v {name}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(String::from)
}

/// A headless Chromium driven through the DevTools protocol on a pipe (fd 3: its
/// commands in, fd 4: its answers and events out; NUL-separated JSON messages).
struct Browser {
    child: Child,
    to: std::fs::File,
    from: std::io::BufReader<std::fs::File>,
    next_id: u64,
    session: Option<String>,
    /// Set when the test is done with Chromium: its watchdog stands down.
    done: Arc<AtomicBool>,
    _profile: tempfile::TempDir,
}

/// How long Chromium may take over the whole test before its watchdog kills it.
const WATCHDOG: Duration = Duration::from_secs(180);

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl Browser {
    fn launch(exe: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (in_read, in_write) = pipe(); // we write commands, Chromium reads fd 3
        let (out_read, out_write) = pipe(); // Chromium writes fd 4, we read
        let mut cmd = Command::new(exe);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=900,760",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        unsafe {
            cmd.pre_exec(move || {
                // copies above 10 first, so that neither end is already 3 or 4
                let a = libc::fcntl(in_read, libc::F_DUPFD, 10);
                let b = libc::fcntl(out_write, libc::F_DUPFD, 10);
                if a < 0 || b < 0 || libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::fcntl(3, libc::F_SETFD, 0);
                libc::fcntl(4, libc::F_SETFD, 0);
                libc::close(a);
                libc::close(b);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("starting Chromium");
        // a Chromium that stops answering is killed, so the test fails instead of hanging
        let (pid, done) = (child.id() as libc::pid_t, Arc::new(AtomicBool::new(false)));
        let watched = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < WATCHDOG {
                if watched.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            // SAFETY: a signal to our own child, which has not been reaped (`done` unset)
            unsafe { libc::kill(pid, libc::SIGKILL) };
        });
        unsafe {
            libc::close(in_read);
            libc::close(out_write);
        }
        Browser {
            child,
            to: unsafe { std::fs::File::from_raw_fd(in_write) },
            from: std::io::BufReader::new(unsafe { std::fs::File::from_raw_fd(out_read) }),
            next_id: 0,
            session: None,
            done,
            _profile: profile,
        }
    }

    /// Sends a command (to the attached page, once there is one) and returns its
    /// result, skipping the events that arrive meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to Chromium");
        loop {
            let mut buf = Vec::new();
            let n = std::io::BufRead::read_until(&mut self.from, 0, &mut buf).unwrap();
            assert!(n > 0, "Chromium closed its pipe while {method} was pending");
            buf.pop();
            let v: Value = serde_json::from_slice(&buf).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    fn wait_for(&mut self, expr: &str, what: &str) {
        let start = Instant::now();
        while self.eval(expr) != json!(true) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "waited 30 s for {what}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn mouse(&mut self, kind: &str, x: f64, y: f64, buttons: u32) {
        self.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1 }),
        );
    }

    /// A stroke with the left button held: press at the first point, move through the
    /// others, release at the last.
    fn stroke(&mut self, points: &[(f64, f64)]) {
        let (x, y) = points[0];
        self.mouse("mousePressed", x, y, 1);
        for &(x, y) in &points[1..] {
            self.mouse("mouseMoved", x, y, 1);
        }
        let (x, y) = *points.last().unwrap();
        self.mouse("mouseReleased", x, y, 0);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The strokes that paint a 28x28 digit on a canvas at (left, top) of `side` pixels:
/// one horizontal stroke over each run of ink in every other row (the page's 20-pixel
/// pen, two rows of the digit wide, fills the rows between).
fn digit_strokes(pixels: &[f32], left: f64, top: f64, side: f64) -> Vec<Vec<(f64, f64)>> {
    let cell = side / 28.0;
    let mut strokes = Vec::new();
    for r in (0..28).step_by(2) {
        let row = &pixels[r * 28..][..28];
        let mut c = 0;
        while c < 28 {
            if row[c] > 0.5 {
                let start = c;
                while c < 28 && row[c] > 0.5 {
                    c += 1;
                }
                let y = top + (r as f64 + 0.5) * cell;
                let x0 = left + (start as f64 + 0.5) * cell;
                let x1 = left + (c as f64 - 0.5) * cell;
                strokes.push(vec![(x0, y), ((x0 + x1) / 2.0, y), (x1, y)]);
            } else {
                c += 1;
            }
        }
    }
    strokes
}

#[test]
fn drawn_digits_are_recognised_in_a_real_browser() {
    let Some(exe) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "headless Chromium is missing in CI: .ci/run installs Debian's chromium"
        );
        eprintln!("skipped: no Chromium on this machine (.ci/run installs Debian's chromium)");
        return;
    };
    let mnist = common::mnist();
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m.safetensors");
    let (ok, _, err) = common::nnlab(&[
        "train",
        "--preset",
        "xavier",
        "--epochs",
        "2",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (_server, addr) = common::serve(&model);

    let mut b = Browser::launch(&exe);
    let target = b.call(
        "Target.createTarget",
        json!({ "url": format!("http://{addr}/") }),
    );
    let session = b.call(
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    );
    b.session = Some(session["sessionId"].as_str().unwrap().to_string());
    b.wait_for(
        "document.readyState === 'complete' && (document.getElementById('model')?.textContent ?? '').includes('mnist')",
        "the page to load and show its model",
    );
    let rect = b.eval(
        "(() => { const r = document.getElementById('pad').getBoundingClientRect(); return [r.left, r.top, r.width]; })()",
    );
    let (left, top, side) = (
        rect[0].as_f64().unwrap(),
        rect[1].as_f64().unwrap(),
        rect[2].as_f64().unwrap(),
    );
    let clear = b.eval(
        "(() => { const r = document.getElementById('clear').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()",
    );
    let (cx, cy) = (clear[0].as_f64().unwrap(), clear[1].as_f64().unwrap());

    let digits = 8;
    let mut right = 0;
    let mut shown = Vec::new();
    for i in 0..digits {
        // Clear, with the mouse
        b.mouse("mousePressed", cx, cy, 1);
        b.mouse("mouseReleased", cx, cy, 0);
        b.wait_for(
            "document.getElementById('answer').textContent.trim() === ''",
            "Clear to empty the answer",
        );
        for s in digit_strokes(mnist.test.images.row(i), left, top, side) {
            b.stroke(&s);
        }
        // the answer to the newest request, sent when the last stroke ended
        b.wait_for(
            "timer === null && !drawing && document.getElementById('answer').dataset.req === String(latest)",
            "the answer to the last stroke",
        );
        let answer = b.eval("document.getElementById('answer').textContent.trim()");
        let answer = answer.as_str().unwrap_or("").to_string();
        let error = b.eval("document.getElementById('error').textContent");
        assert_eq!(error, json!(""), "the page shows an error");
        let class: u8 = answer
            .split_whitespace()
            .next()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("answer {answer:?} names no digit"));
        right += usize::from(class == mnist.test.labels[i]);
        shown.push((mnist.test.labels[i], answer));
    }
    // drawn with a thick pen, the digits are not the test images: most, not all, must
    // come out right (each answer is also what POST /predict gives for the canvas)
    assert!(right >= digits - 2, "label and answer: {shown:?}");

    let shot = b.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = base64_decode(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join("serve_page.png"))
        .unwrap()
        .write_all(&png)
        .unwrap();
}

/// Standard base64 (the screenshot's encoding), for the test alone.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(value).collect();
    bytes
        .chunks(4)
        .flat_map(|q| {
            let n = q.iter().fold(0u32, |a, &v| a << 6 | v as u32) << (6 * (4 - q.len()));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out[..q.len() - 1].to_vec()
        })
        .collect()
}
