//! `nnlab serve`: a page to draw a digit on, answered by a saved model (or an ensemble)
//! as you draw. The page (assets/serve/index.html, built into the binary) posts the
//! drawing as a PNG to `/predict`, which prepares it exactly as `nnlab predict --image`
//! does and answers with the class probabilities and the 28x28 input the network saw.
//!
//! Routes: `GET /` the page; `GET /model` what is loaded (JSON); `POST /predict` an
//! image (PNG, JPEG, PGM/PPM) -> JSON. Errors are JSON too: `{"error": "..."}` with
//! status 400 (not an image, no digit, two Content-Lengths), 404, 405, 408 (a body
//! slower than `BODY_TIMEOUT`) or 413 (over `MAX_BODY`).
//!
//! What it protects against: requests are read concurrently on tokio (a client that
//! sends a few bytes and waits holds no one else up; its headers must arrive within
//! `HEADER_TIMEOUT`, its body within `BODY_TIMEOUT`); bodies are limited while read
//! (`MAX_BODY`, a larger declared length refused before reading); images are checked
//! from their headers before decoding (`image_input::MAX_SIDE`); connections are
//! bounded (`MAX_CONNECTIONS`) and answered without Nagle's delay; Ctrl-C, SIGTERM and
//! SIGHUP stop accepting and let the requests in flight finish.

use super::load_model;
use super::outln;
use crate::cli::ServeArgs;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, header};
use nnlab::Runtime;
use nnlab::io::LoadedModel;
use nnlab::io::image_input::{Invert, SIDE, digit_from_bytes};
use nnlab::layers::Mode;
use nnlab::loss::softmax;
use nnlab::tensor::Matrix;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The drawing page.
const PAGE: &str = include_str!("../../assets/serve/index.html");

/// How long a client may take to send its request's body (its headers: see `http`).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request body accepted (a 280x280 PNG drawing is a few kB): a larger
/// declared `Content-Length` is refused before reading, a longer body while reading.
const MAX_BODY: usize = 4 << 20;

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json_reply(status: u16, v: Value) -> Reply {
    Reply {
        status,
        content_type: "application/json",
        body: v.to_string().into_bytes(),
    }
}

fn error(status: u16, message: impl Into<String>) -> Reply {
    json_reply(status, json!({ "error": message.into() }))
}

/// What every connection shares.
struct State {
    /// The models (one forward at a time; requests are read and answered
    /// concurrently, and the forward of one digit takes about a millisecond).
    models: Mutex<Vec<LoadedModel>>,
    /// `GET /model`'s answer, made once.
    info: Value,
    rt: Runtime,
    quiet: bool,
    /// Requests answered, and after how many to stop (`--max-requests`).
    served: AtomicUsize,
    max_requests: Option<usize>,
    /// Woken when `max_requests` have been answered.
    done: tokio::sync::Notify,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let mut models: Vec<LoadedModel> = Vec::new();
    for path in &args.model {
        let m = load_model(path, false)?;
        let (h, w) = m.meta.input_shape;
        if (h, w) != (SIDE, SIDE) {
            anyhow::bail!(
                "{} takes {h}x{w} images; the page sends {SIDE}x{SIDE} MNIST-style digits",
                path.display()
            );
        }
        if let Some(first) = models.first()
            && m.meta.class_names != first.meta.class_names
        {
            anyhow::bail!(
                "{} has classes {:?} but {} has {:?}; an ensemble needs the same classes",
                path.display(),
                m.meta.class_names,
                first.path.display(),
                first.meta.class_names
            );
        }
        models.push(m);
    }
    let rt = args.rt.runtime();
    let state = Arc::new(State {
        info: nnlab::report::tidy(model_info(&models)),
        models: Mutex::new(models),
        rt,
        quiet: args.quiet,
        served: AtomicUsize::new(0),
        max_requests: args.max_requests,
        done: tokio::sync::Notify::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(rt.threads.max(1))
        .max_blocking_threads(rt.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(serve(args, state))
}

/// Serves until a signal (Ctrl-C, SIGTERM, SIGHUP) or `--max-requests`.
async fn serve(args: &ServeArgs, state: Arc<State>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    outln!("nnlab serve: open http://{addr}/ to draw a digit (Ctrl-C stops)");
    std::io::stdout().flush()?;
    let st = state.clone();
    let why = super::http::serve_until(
        listener,
        move |req| handle(req, st.clone()),
        stop_signal(state.clone()),
    )
    .await;
    if !state.quiet {
        eprintln!("nnlab serve: {why}; finished the requests in flight");
    }
    Ok(())
}

/// Resolves, saying why, at the first of Ctrl-C, SIGTERM, SIGHUP or `max_requests`
/// answered.
async fn stop_signal(state: Arc<State>) -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return "cannot listen for signals";
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = term.recv() => "terminated",
            _ = hup.recv() => "hung up",
            _ = state.done.notified() => "served --max-requests",
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "interrupted",
        _ = state.done.notified() => "served --max-requests",
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let start = Instant::now();
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let reply = route(req, &state).await;
    if !state.quiet {
        eprintln!(
            "{method} {uri} -> {} ({:.1} ms)",
            reply.status,
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    let served = state.served.fetch_add(1, Ordering::SeqCst) + 1;
    if state.max_requests.is_some_and(|n| served >= n) {
        state.done.notify_one();
    }
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(reply.content_type),
    );
    Ok(response)
}

async fn route(req: Request<Incoming>, state: &Arc<State>) -> Reply {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/" | "/index.html") => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE.as_bytes().to_vec(),
        },
        (&Method::GET, "/model") => json_reply(200, state.info.clone()),
        (&Method::POST, "/predict") => match read_body(req).await {
            Ok(body) => {
                let st = state.clone();
                tokio::task::spawn_blocking(move || {
                    // decoded before taking the models, so a slow image holds no one up
                    match digit_from_bytes(&body, Invert::Auto) {
                        Ok(pixels) => {
                            let mut models = st.models.lock().unwrap_or_else(|e| e.into_inner());
                            predict(pixels, &mut models, &st.rt)
                        }
                        Err(e) => error(400, e),
                    }
                })
                .await
                .unwrap_or_else(|e| error(500, format!("the prediction failed: {e}")))
            }
            Err(reply) => reply,
        },
        (m, "/" | "/index.html" | "/model" | "/predict") => {
            error(405, format!("{m} is not allowed on {path}"))
        }
        _ => error(
            404,
            format!("no page {path}: try / (the drawing page), /model, or POST /predict"),
        ),
    }
}

/// The request's body: at most `MAX_BODY` bytes, within `BODY_TIMEOUT`, with at most
/// one `Content-Length` (hyper refuses a malformed or conflicting one itself).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_big = || error(413, format!("the body is over {} MB", MAX_BODY >> 20));
    let lengths: Vec<_> = req
        .headers()
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .collect();
    if lengths.len() > 1 {
        return Err(error(400, "more than one Content-Length header"));
    }
    let declared = lengths
        .first()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_big());
    }
    let body = Limited::new(req.into_body(), MAX_BODY);
    match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Err(_) => Err(error(
            408,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_big()),
        Ok(Err(e)) => Err(error(400, format!("cannot read the request body: {e}"))),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn model_info(models: &[LoadedModel]) -> Value {
    let first = &models[0].meta;
    json!({
        "models": models.iter().map(|m| m.path.display().to_string()).collect::<Vec<_>>(),
        "dataset": first.dataset,
        "names": first.class_names,
        "test_accuracy": if models.len() == 1 { first.metrics.get("test_accuracy").copied() } else { None },
    })
}

/// The prepared digit's class probabilities, averaged over the models.
fn predict(pixels: Vec<f32>, models: &mut [LoadedModel], rt: &Runtime) -> Reply {
    let x = Matrix::from_vec(1, SIDE * SIDE, pixels);
    let classes = models[0].model.classes;
    let mut avg = vec![0f32; classes];
    let mut probs = Matrix::zeros(1, classes);
    let share = 1.0 / models.len() as f32;
    for m in models.iter_mut() {
        let logits = m.model.forward(&x, Mode::Eval, &mut nnlab::Rng::new(0), rt);
        softmax(logits, &mut probs);
        for (a, p) in avg.iter_mut().zip(&probs.data) {
            *a += share * p;
        }
    }
    let names = &models[0].meta.class_names;
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by(|&a, &b| avg[b].total_cmp(&avg[a]));
    let top: Vec<Value> = order
        .iter()
        .take(3)
        .map(|&c| json!({ "class": c, "name": names[c], "probability": avg[c] }))
        .collect();
    json_reply(
        200,
        json!({ "top": top, "probabilities": avg, "names": names, "input": x.data }),
    )
}
