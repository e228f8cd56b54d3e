//! `train --live`: the report folder, rewritten after every epoch (summary so far,
//! per-epoch table, learning curves; the page reloads itself), served on loopback
//! while the run trains and until Ctrl-C after it ends.
//!
//! The server answers only `GET` of `/` and of the plain files in the folder (names of
//! letters, digits, `_`, `-` and `.`, as reports write them; no symlinks), asked for by
//! the loopback names `127.0.0.1` or `localhost`, through the same server loop as
//! `nnlab serve` (limits, timeouts).

use super::report::{ReportWriter, Table};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, header};
use nnlab::config::TrainConfig;
use nnlab::train::EpochStats;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

/// Seconds between the live page's reloads.
pub const REFRESH_SECONDS: u32 = 3;

/// Starts serving `dir` on 127.0.0.1:`port` (0: a free one) on a thread of its own;
/// returns the address. The server lives as long as the process.
pub fn start(dir: &Path, port: u16) -> anyhow::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| anyhow::anyhow!("--live: cannot listen on 127.0.0.1:{port}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = {
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        runtime.block_on(super::http::serve_until(
            listener,
            move |req| answer(req, dir.clone()),
            std::future::pending(),
        ))
    });
    Ok(addr)
}

async fn answer(req: Request<Incoming>, dir: PathBuf) -> Result<Response<Full<Bytes>>, Infallible> {
    // only requests for this machine's loopback names (no DNS-rebound site reads it)
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
    let (status, kind, body) = if name == "127.0.0.1" || name == "localhost" {
        file_reply(req.method(), req.uri().path(), &dir)
    } else {
        let msg = format!("Host {host:?} is not this machine's loopback address");
        (403, "text/plain; charset=utf-8", msg.into_bytes())
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

/// (status, content type, body) for a request of `path`.
fn file_reply(method: &Method, path: &str, dir: &Path) -> (u16, &'static str, Vec<u8>) {
    const TEXT: &str = "text/plain; charset=utf-8";
    if method != Method::GET {
        return (
            405,
            TEXT,
            format!("{method} is not allowed: GET only").into(),
        );
    }
    let name = match path.strip_prefix('/') {
        Some("") => "index.html",
        Some(n) => n,
        None => "",
    };
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    let kind = match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("json") => "application/json",
        Some("csv") => "text/csv; charset=utf-8",
        _ => "",
    };
    if !plain || kind.is_empty() {
        return (404, TEXT, format!("no file {path} in the report").into());
    }
    let file = dir.join(name);
    if std::fs::symlink_metadata(&file).is_ok_and(|m| m.file_type().is_symlink()) {
        return (404, TEXT, format!("no file {path} in the report").into());
    }
    match nnlab::files::read_regular(&file, "a report file") {
        Ok(bytes) => (200, kind, bytes),
        Err(_) if name == "index.html" => (
            200,
            kind,
            format!(
                "<!doctype html><meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\"><title>nnlab live</title><p>Waiting for the first epoch…</p>"
            )
            .into(),
        ),
        Err(_) => (404, TEXT, format!("no file {path} in the report").into()),
    }
}

/// Rewrites the live page in `dir` after an epoch: the figures so far, the per-epoch
/// table and the learning curves.
pub fn write_page(dir: &Path, cfg: &TrainConfig, history: &[EpochStats]) -> anyhow::Result<()> {
    let Some(last) = history.last() else {
        return Ok(());
    };
    let mut r = ReportWriter::new(dir)?;
    r.refresh_every(REFRESH_SECONDS);
    r.summary(
        "training",
        format!(
            "epoch {} of {} (live: this page reloads itself)",
            last.epoch, cfg.epochs
        ),
    );
    if let Some(line) = super::report::validation_line(last) {
        r.summary("validation accuracy", line);
    }
    if let Some(t) = last.test_acc {
        r.summary("test accuracy", format!("{t:.4}"));
    }
    r.table("training run", Table::epochs("Per epoch", history));
    r.learning_curves(
        "train",
        "training run",
        history,
        &nnlab::report::train_accuracy_caption(cfg),
    )?;
    r.finish("nnlab train (live)")?;
    Ok(())
}
