//! A load on `nnlab serve`: CONNECTIONS keep-alive connections each send their share
//! of REQUESTS `POST /predict` with the same PNG, one after another; prints requests
//! per second, the median and 99th-percentile latency, and how many answers were not
//! 200. For BENCHMARKS.md's server figures.
//!
//! `cargo run --release --example serve_load -- 127.0.0.1:PORT CONNECTIONS REQUESTS IMAGE.png`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Sends one request on `s` and reads the answer; returns its status.
fn post(s: &mut BufReader<TcpStream>, addr: &str, png: &[u8]) -> std::io::Result<u16> {
    let head = format!(
        "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    );
    s.get_mut().write_all(head.as_bytes())?;
    s.get_mut().write_all(png)?;
    let mut line = String::new();
    s.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        s.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    s.read_exact(&mut body)?;
    Ok(status)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, conns, total, image] = &args[..] else {
        eprintln!("usage: serve_load ADDR CONNECTIONS REQUESTS IMAGE.png");
        std::process::exit(2);
    };
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let total: usize = total.parse().expect("REQUESTS");
    let png = std::fs::read(image).expect("IMAGE");
    let start = Instant::now();
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..conns)
            .map(|c| {
                let (addr, png) = (addr.as_str(), png.as_slice());
                let n = total / conns + usize::from(c < total % conns);
                sc.spawn(move || {
                    let stream = TcpStream::connect(addr).expect("connect");
                    stream.set_nodelay(true).ok();
                    let mut s = BufReader::new(stream);
                    let (mut lat, mut bad) = (Vec::with_capacity(n), 0);
                    for _ in 0..n {
                        let t = Instant::now();
                        match post(&mut s, addr, png) {
                            Ok(200) => lat.push(t.elapsed()),
                            _ => bad += 1,
                        }
                    }
                    (lat, bad)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = start.elapsed().as_secs_f64();
    let mut lat: Vec<Duration> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let bad: usize = results.iter().map(|r| r.1).sum();
    lat.sort();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    println!(
        "{conns} connections, {total} requests: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, {bad} not 200",
        total as f64 / secs,
        ms(pct(0.5)),
        ms(pct(0.99))
    );
}
