//! The HTTP wire on top of `tiny_http`: a fixed pool of worker threads taking
//! requests from one [`tiny_http::Server`], the body limit, injected faults,
//! the request log, and the JSON error shape.
//!
//! `tiny_http` owns the sockets, HTTP/1.1 parsing, keep-alive, chunked bodies
//! and `Expect: 100-continue`; this module turns each of its requests into our
//! [`Request`], runs the router and answers with our [`Response`]. Every
//! request gets exactly one answer: a handler panic becomes a 500 JSON error.

use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod message;

pub(crate) use message::{ApiError, Request, Response};
use serde_json::json;

use crate::guard::{Csrf, Hosts};
use crate::store::State;
use crate::{Fault, PlatformError, RequestRecord};

/// Largest accepted request body (an upload chunk of 1000 runs fits easily).
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;
/// Requests handled at once; more wait in `tiny_http`'s queue.
const WORKERS: usize = 8;
/// How often idle workers (and stalled requests) look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// How long dropping the server waits for busy workers before leaving them.
const JOIN_GRACE: Duration = Duration::from_millis(500);

/// What every worker checks before a route runs, and hands to the routes.
struct Gate {
    hosts: Arc<Hosts>,
    csrf: Arc<Csrf>,
}

/// The listener and its worker threads.
pub(crate) struct Server {
    addr: SocketAddr,
    hosts: Arc<Hosts>,
    inner: Arc<tiny_http::Server>,
    shutdown: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (loopback only) and starts serving requests addressed to
    /// it, or to one of `public_urls`.
    pub(crate) fn start(
        addr: &str,
        public_urls: &[String],
        state: Arc<State>,
        log: bool,
    ) -> Result<Server, PlatformError> {
        let bind_err = |source| PlatformError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let candidates: Vec<SocketAddr> = addr.to_socket_addrs().map_err(bind_err)?.collect();
        if candidates.is_empty() || !candidates.iter().all(|a| a.ip().is_loopback()) {
            return Err(PlatformError::NotLoopback {
                addr: addr.to_owned(),
            });
        }
        let inner = tiny_http::Server::http(&candidates[..]).map_err(|e| {
            bind_err(match e.downcast::<std::io::Error>() {
                Ok(io) => *io,
                Err(other) => std::io::Error::other(other),
            })
        })?;
        let local = inner.server_addr().to_ip().ok_or_else(|| {
            bind_err(std::io::Error::other(
                "the listener has no IP address".to_owned(),
            ))
        })?;
        let gate = Arc::new(Gate {
            hosts: Arc::new(Hosts::new(local, public_urls)?),
            csrf: Arc::new(Csrf::new()),
        });
        let mut server = Server {
            addr: local,
            hosts: Arc::clone(&gate.hosts),
            inner: Arc::new(inner),
            shutdown: Arc::new(AtomicBool::new(false)),
            workers: Vec::with_capacity(WORKERS),
        };
        for i in 0..WORKERS {
            let (inner, state, flag, gate) = (
                Arc::downgrade(&server.inner),
                Arc::clone(&state),
                Arc::clone(&server.shutdown),
                Arc::clone(&gate),
            );
            let spawned = std::thread::Builder::new()
                .name(format!("flx-http-{i}"))
                .spawn(move || work(&inner, &state, &flag, &gate, log));
            match spawned {
                Ok(h) => server.workers.push(h),
                // Dropping `server` stops the workers already started.
                Err(e) => return Err(bind_err(e)),
            }
        }
        Ok(server)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The names this server answers to.
    pub(crate) fn hosts(&self) -> &Hosts {
        &self.hosts
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.inner.unblock();
        }
        // Workers notice the flag within `POLL`. One blocked on a client that
        // neither sends nor reads (a body that never comes) is left behind
        // after the grace period rather than holding up the drop; it holds no
        // reference to the listener, which closes when `self.inner` goes.
        let deadline = Instant::now() + JOIN_GRACE;
        for h in self.workers.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        // Requests queued but never picked up still get an answer. `try_recv`
        // also returns `None` for each leftover unblock marker, so skip those.
        let mut queued = Vec::new();
        let mut empty = 0;
        while empty <= WORKERS {
            match self.inner.try_recv() {
                Ok(Some(rq)) => queued.push(rq),
                _ => empty += 1,
            }
        }
        if !queued.is_empty() {
            // Answering may wait on a client (tiny_http then drains the body),
            // so it happens off the dropping thread.
            let _ = std::thread::Builder::new()
                .name("flx-http-bye".to_owned())
                .spawn(move || {
                    for rq in queued {
                        let e = ApiError::new(
                            503,
                            "unavailable",
                            "the server is shutting down".to_owned(),
                        );
                        send(rq, Response::error(e));
                    }
                });
        }
    }
}

/// One worker: take requests until shutdown. The listener is borrowed only
/// while waiting, never while serving (see [`Server`]'s `Drop`).
fn work(
    server: &Weak<tiny_http::Server>,
    state: &State,
    shutdown: &AtomicBool,
    gate: &Gate,
    log: bool,
) {
    while !shutdown.load(Ordering::SeqCst) {
        let next = match server.upgrade() {
            Some(server) => server.recv_timeout(POLL),
            None => break,
        };
        match next {
            Ok(Some(rq)) => {
                // Handler panics are caught inside `serve`; this guard keeps
                // the worker alive if anything else panics. A request dropped
                // unanswered that way still gets tiny_http's empty 500.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    serve(rq, state, shutdown, gate, log);
                }));
            }
            Ok(None) => {}
            // The accept loop failed; nothing more will arrive, but keep the
            // thread until shutdown so that dropping the server stays uniform.
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Answers one request.
fn serve(mut rq: tiny_http::Request, state: &State, shutdown: &AtomicBool, gate: &Gate, log: bool) {
    let started = Instant::now();
    let method = rq.method().as_str().to_owned();
    let target = rq.url().to_owned();
    if !target.starts_with('/') {
        let e = ApiError::invalid(format!("unsupported request target `{target}`"));
        send(rq, Response::error(e));
        return;
    }
    let (path, query) = split_target(&target);
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.to_string(), h.value.to_string()))
        .collect();
    let hosts: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_str())
        .collect();
    let origin = gate.hosts.origin(&hosts);
    let mut req = Request {
        method,
        path,
        query: crate::util::parse_form(&query),
        body: Vec::new(),
        origin: origin.as_ref().cloned().unwrap_or_default(),
        csrf: Arc::clone(&gate.csrf),
        headers,
    };
    // A refused name reaches no route and reads no body (DNS rebinding).
    if let Err(e) = origin {
        let r = if req.path == "/api" || req.path.starts_with("/api/") {
            Response::error(e)
        } else {
            Response::html(e.status, gate.hosts.refusal_page(e.status))
        };
        finish(state, &req, r.status, started, log);
        send(rq, r);
        return;
    }
    match read_body(&mut rq) {
        Ok(body) => req.body = body,
        Err(e) => {
            // `tiny_http` reads and discards whatever body is left once the
            // answer is sent, so the connection stays usable.
            finish(state, &req, e.status, started, log);
            send(rq, Response::error(e));
            return;
        }
    }
    let response = match state.take_fault(&req.path) {
        Some(Fault::Stall(d)) => {
            if stall(d, shutdown) {
                dispatch(state, &req)
            } else {
                Response::error(ApiError::new(
                    503,
                    "unavailable",
                    "the server is shutting down".to_owned(),
                ))
            }
        }
        Some(fault) => fault_response(&fault),
        None => dispatch(state, &req),
    };
    finish(state, &req, response.status, started, log);
    send(rq, response);
}

/// Reads the whole body, at most [`MAX_BODY`] bytes: a declared length over
/// the limit is refused before a byte is read, a chunked body once it passes it.
fn read_body(rq: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "payload_too_large",
            format!(
                "request body is larger than {} MiB",
                MAX_BODY / (1024 * 1024)
            ),
        )
    };
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_large());
    }
    // tiny_http reads an unparsable length as "no body"; refuse it instead.
    let header = |name: &'static str| {
        rq.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.to_string())
    };
    if rq.body_length().is_none() && header("Transfer-Encoding").is_none() {
        if let Some(len) = header("Content-Length") {
            return Err(ApiError::invalid(format!("invalid Content-Length `{len}`")));
        }
    }
    let mut body = Vec::with_capacity(rq.body_length().unwrap_or(0));
    let limit = u64::try_from(MAX_BODY)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    rq.as_reader()
        .take(limit)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::invalid(format!("cannot read the request body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

/// Sleeps `d`, waking to look at the shutdown flag; `false` when shutting down.
fn stall(d: Duration, shutdown: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if shutdown.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
    true
}

/// Splits `/path?query`.
fn split_target(target: &str) -> (String, String) {
    match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.to_owned(), String::new()),
    }
}

/// Runs the route; a panic in a handler becomes a 500, never a lost request.
fn dispatch(state: &State, req: &Request) -> Response {
    catch_unwind(AssertUnwindSafe(|| crate::routes::handle(state, req))).unwrap_or_else(|_| {
        Response::error(ApiError::new(
            500,
            "internal_error",
            "the server failed while handling this request".to_owned(),
        ))
    })
}

/// The canned answer of a fault that replaces processing.
fn fault_response(fault: &Fault) -> Response {
    match fault {
        Fault::Status {
            status,
            retry_after,
        } => {
            let code = match status {
                429 => "rate_limited",
                503 => "unavailable",
                _ => "internal_error",
            };
            let mut e = ApiError::new(*status, code, format!("injected fault: HTTP {status}"));
            if let Some(secs) = retry_after {
                e.headers.push(("Retry-After", secs.to_string()));
            }
            Response::error(e)
        }
        Fault::NonJson => Response::html(200, "<html>oops".to_owned()),
        Fault::Truncated => {
            let full = json!({"run_batch_id": "00000000-0000-4000-8000-000000000000", "run_ids": ["cut-short"]})
                .to_string();
            let half = full[..full.len() / 2].to_owned();
            Response::raw_json(200, half)
        }
        // Stall is handled by the caller; answering 500 keeps the match total
        // without pretending success.
        Fault::Stall(_) => Response::error(ApiError::new(
            500,
            "internal_error",
            "injected fault".to_owned(),
        )),
    }
}

/// Records and logs an answered request. The log has the path without query,
/// so a user code or any other query value never reaches it.
fn finish(state: &State, req: &Request, status: u16, started: Instant, log: bool) {
    state.record(RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        status,
        idempotency_key: req.header("idempotency-key").map(str::to_owned),
        authorization_present: req.header("authorization").is_some(),
    });
    if log {
        eprintln!(
            "{} {} {} {}ms",
            req.method,
            req.path,
            status,
            started.elapsed().as_millis()
        );
    }
}

/// Sends `r` as the answer to `rq`, always with a `Content-Length` (never
/// chunked). Errors mean the client is gone; there is nobody left to tell.
fn send(rq: tiny_http::Request, r: Response) {
    let mut out = tiny_http::Response::from_data(r.body)
        .with_status_code(r.status)
        .with_chunked_threshold(usize::MAX);
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", r.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ];
    headers.extend(r.headers.iter().map(|(k, v)| (*k, v.as_str())));
    for (k, v) in headers {
        // Every name and value here is ours and plain ASCII; one that is not
        // is left out rather than failing the whole answer.
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    }
    let _ = rq.respond(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_targets() {
        assert_eq!(
            split_target("/api/x?y=1&z"),
            ("/api/x".to_owned(), "y=1&z".to_owned())
        );
        assert_eq!(split_target("/"), ("/".to_owned(), String::new()));
    }
}
