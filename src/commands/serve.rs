//! `nnlab serve`: a page to draw a digit on, answered by a saved model (or an ensemble)
//! as you draw. The page (assets/serve/index.html, built into the binary) posts the
//! drawing as a PNG to `/predict`, which prepares it exactly as `nnlab predict --image`
//! does and answers with the class probabilities and the 28x28 input the network saw.
//!
//! Routes: `GET /` the page; `GET /model` what is loaded (JSON); `POST /predict` an
//! image (PNG, JPEG, PGM/PPM) -> JSON. Errors are JSON too: `{"error": "..."}` with
//! status 400 (not an image, no digit), 404, 405 or 413 (over `MAX_BODY`).

use super::load_model;
use super::outln;
use crate::cli::ServeArgs;
use anyhow::Context;
use nnlab::io::LoadedModel;
use nnlab::io::image_input::{Invert, SIDE, digit_from_bytes};
use nnlab::layers::Mode;
use nnlab::loss::softmax;
use nnlab::tensor::Matrix;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Instant;
use tiny_http::{Header, Method, Request, Response, Server};

/// The drawing page.
const PAGE: &str = include_str!("../../assets/serve/index.html");

/// Largest request body accepted (a 280x280 PNG drawing is a few kB).
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
    let server = Server::http((args.host.as_str(), args.port))
        .map_err(|e| anyhow::anyhow!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let addr = server
        .server_addr()
        .to_ip()
        .context("the server is not on an IP address")?;
    outln!("nnlab serve: open http://{addr}/ to draw a digit (Ctrl-C stops)");
    std::io::stdout().flush()?;
    let rt = args.rt.runtime();
    let _fp = rt.enter();
    for (served, mut req) in server.incoming_requests().enumerate() {
        let start = Instant::now();
        let reply = handle(&mut req, &mut models, &rt);
        if !args.quiet {
            eprintln!(
                "{} {} -> {} ({:.1} ms)",
                req.method(),
                req.url(),
                reply.status,
                start.elapsed().as_secs_f64() * 1e3
            );
        }
        let content_type =
            Header::from_bytes("Content-Type", reply.content_type).expect("a valid header");
        // A client that went away is its own business; keep serving the others.
        let _ = req.respond(
            Response::from_data(reply.body)
                .with_status_code(reply.status)
                .with_header(content_type),
        );
        if args.max_requests.is_some_and(|n| served + 1 >= n) {
            break;
        }
    }
    Ok(())
}

fn handle(req: &mut Request, models: &mut [LoadedModel], rt: &nnlab::Runtime) -> Reply {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    match (req.method(), path.as_str()) {
        (Method::Get, "/" | "/index.html") => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE.as_bytes().to_vec(),
        },
        (Method::Get, "/model") => json_reply(200, model_info(models)),
        (Method::Post, "/predict") => match read_body(req) {
            Ok(body) => predict(&body, models, rt),
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

fn read_body(req: &mut Request) -> Result<Vec<u8>, Reply> {
    let too_big = || error(413, format!("the body is over {} MB", MAX_BODY >> 20));
    if req.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    req.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| error(400, format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_big());
    }
    Ok(body)
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

/// The image's class probabilities, averaged over the models.
fn predict(body: &[u8], models: &mut [LoadedModel], rt: &nnlab::Runtime) -> Reply {
    let pixels = match digit_from_bytes(body, Invert::Auto) {
        Ok(p) => p,
        Err(e) => return error(400, e),
    };
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
