//! The HTTP server loop shared by `nnlab serve` and `train --live`: hyper on tokio,
//! connections read concurrently (a client that sends a few bytes and waits holds no
//! one else up), headers within `HEADER_TIMEOUT`, at most `MAX_CONNECTIONS` at once,
//! answers without Nagle's delay, and a graceful stop that lets the requests in flight
//! finish (for at most `SHUTDOWN_GRACE`).

use http_body_util::Full;
use hyper::Request;
use hyper::Response;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a graceful shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Answers each request on `listener` with `handler` until `stop` resolves, then
/// stops accepting and lets the requests in flight finish; returns what `stop` said.
pub async fn serve_until<H, F>(
    listener: tokio::net::TcpListener,
    handler: H,
    stop: impl std::future::Future<Output = &'static str>,
) -> &'static str
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(stop);
    let why = loop {
        tokio::select! {
            why = &mut stop => break why,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // out of file descriptors, say: wait rather than spin
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue; // over MAX_CONNECTIONS: dropped, so closed
                };
                // answers go out at once, not after the client's delayed ACK
                let _ = stream.set_nodelay(true);
                let service = hyper::service::service_fn(handler.clone());
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
        }
    };
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
    }
    why
}
