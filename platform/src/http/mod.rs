//! The HTTP wire: hyper connections on a tokio runtime of their own, behind
//! an axum router with tower-http's timeout layer; the limits (connections,
//! header, body and idle timeouts, a body limit per route), the `Host` check,
//! injected faults, the request log and the JSON error shape.
//!
//! The routes stay synchronous: each request's body is read here, then the
//! route runs on tokio's blocking pool, so SQLite never blocks a thread that
//! serves sockets, and a handler panic becomes a 500 JSON error. Every
//! request gets exactly one answer.

use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod conn;
mod message;
mod record;

use axum::body::Body;
use axum::extract::State as AxumState;
use http_body_util::BodyExt;
pub(crate) use message::{ApiError, Request, Response};
use serde_json::json;
use tokio::sync::watch;

use crate::guard::{Csrf, Hosts};
use crate::store::State;
use crate::{Config, Fault, Limits, PlatformError, RequestRecord};

/// Largest accepted upload body (an upload chunk of 1000 runs fits easily).
const MAX_UPLOAD_BODY: usize = 32 * 1024 * 1024;
/// Largest body of any other authenticated API route.
const MAX_API_BODY: usize = 1024 * 1024;
/// Largest body of a route anyone may call without a credential (login,
/// health) and of the pages' forms: nothing they take is bigger than a token.
const MAX_OPEN_BODY: usize = 16 * 1024;
/// How long dropping the server waits for busy requests before leaving them.
const JOIN_GRACE: Duration = Duration::from_millis(500);

/// What every request handler shares.
pub(super) struct App {
    state: Arc<State>,
    hosts: Arc<Hosts>,
    csrf: Arc<Csrf>,
    log: bool,
    /// Where every `/api` request is recorded ([`Config::record_requests`]).
    recorder: Option<record::Recorder>,
    limits: Limits,
    shutdown: watch::Receiver<bool>,
}

/// The listener, its runtime and its connections.
pub(crate) struct Server {
    addr: SocketAddr,
    hosts: Arc<Hosts>,
    shutdown: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Server {
    /// Binds `addr` (loopback only) and starts serving requests addressed to
    /// it, or to one of `public_urls`.
    pub(crate) fn start(config: &Config, state: Arc<State>) -> Result<Server, PlatformError> {
        let addr = config.addr.as_str();
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
        // Two workers serve every socket; SQLite work goes to the blocking pool.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(8)
            .thread_name("flx-http")
            .enable_all()
            .build()
            .map_err(bind_err)?;
        let listener = {
            let _entered = runtime.enter();
            listen(&candidates).map_err(bind_err)?
        };
        let local = listener.local_addr().map_err(bind_err)?;
        let hosts = Arc::new(Hosts::new(local, &config.public_urls)?);
        let recorder = config
            .record_requests
            .as_deref()
            .map(record::Recorder::open)
            .transpose()?;
        let (shutdown, watcher) = watch::channel(false);
        let app = Arc::new(App {
            state,
            hosts: Arc::clone(&hosts),
            csrf: Arc::new(Csrf::new()),
            log: config.log,
            recorder,
            limits: config.limits.clone(),
            shutdown: watcher,
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&app))
            .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                config.limits.request_timeout,
            ));
        runtime.spawn(conn::accept(listener, router, app));
        Ok(Server {
            addr: local,
            hosts,
            shutdown,
            runtime: Some(runtime),
        })
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
        let _ = self.shutdown.send(true);
        // Connections finish the answer they are writing and close; the
        // listener closes with the accept task. A route still running on the
        // blocking pool is left to finish on its own after the grace period.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(JOIN_GRACE);
        }
    }
}

/// Binds the first candidate that can be bound, with a backlog long enough
/// that a burst of connections waits in the kernel's queue instead of having
/// its handshakes dropped and retried seconds later (std's is 128).
fn listen(candidates: &[SocketAddr]) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = std::io::Error::other("no address to listen on");
    for a in candidates {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(*a).and_then(|()| socket.listen(4096)) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Whether shutdown has begun.
fn stopping(app: &App) -> bool {
    *app.shutdown.borrow()
}

/// Completes once shutdown begins.
async fn stopped(app: &App) {
    let mut rx = app.shutdown.clone();
    // An error means the sender is gone, which is shutdown too.
    let _ = rx.wait_for(|s| *s).await;
}

/// Most bytes a request to `path` may send.
fn body_limit(path: &str) -> usize {
    if path == "/api/sync/upload" {
        MAX_UPLOAD_BODY
    } else if path == "/api/health"
        || path.starts_with("/api/cli-connect/")
        || path == "/api/auth/oidc/exchange"
    {
        MAX_OPEN_BODY
    } else if path.starts_with("/api/") {
        MAX_API_BODY
    } else {
        MAX_OPEN_BODY
    }
}

fn too_large(limit: usize) -> ApiError {
    let shown = if limit >= 1024 * 1024 {
        format!("{} MiB", limit / (1024 * 1024))
    } else {
        format!("{} KiB", limit / 1024)
    };
    ApiError::new(
        413,
        "payload_too_large",
        format!("request body is larger than {shown}"),
    )
}

/// Answers one request.
async fn handle(
    AxumState(app): AxumState<Arc<App>>,
    rq: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let (parts, body) = rq.into_parts();
    let (mut req, refused) = parse(&app, &parts);
    let response = match refused {
        Some(r) => r,
        None => match read_body(body, body_limit(&req.path), app.limits.body_timeout).await {
            Ok(bytes) => {
                req.body = bytes;
                let req = Arc::new(req);
                let r = run(&app, Arc::clone(&req)).await;
                finish(&app, &req, r.status, started);
                return to_http(r);
            }
            Err(e) => Response::error(e),
        },
    };
    finish(&app, &req, response.status, started);
    to_http(response)
}

/// Our [`Request`] (without its body yet), and the answer when it must
/// not reach a route: a target that is not a path, or a `Host` that does not
/// name this server (DNS rebinding; then no body is read either).
fn parse(app: &App, parts: &axum::http::request::Parts) -> (Request, Option<Response>) {
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let hosts: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "host")
        .map(|(_, v)| v.as_str())
        .collect();
    let origin = app.hosts.origin(&hosts);
    let req = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: crate::util::parse_form(parts.uri.query().unwrap_or("")),
        body: Vec::new(),
        origin: origin.as_ref().cloned().unwrap_or_default(),
        csrf: Arc::clone(&app.csrf),
        headers,
    };
    let refused = if parts.uri.scheme().is_some() || !req.path.starts_with('/') {
        Some(Response::error(ApiError::invalid(format!(
            "unsupported request target `{}`",
            parts.uri
        ))))
    } else if let Err(e) = origin {
        Some(if req.path == "/api" || req.path.starts_with("/api/") {
            Response::error(e)
        } else {
            Response::html(e.status, app.hosts.refusal_page(e.status))
        })
    } else {
        None
    };
    (req, refused)
}

/// Applies a queued fault or runs the route on the blocking pool.
async fn run(app: &App, req: Arc<Request>) -> Response {
    match app.state.take_fault(&req.path) {
        Some(Fault::Stall(d)) => {
            if !wait(app, d).await {
                return shutting_down();
            }
            dispatch(app, req).await
        }
        Some(Fault::HoldAnswer(d)) => {
            let answer = dispatch(app, req).await;
            if !wait(app, d).await {
                return shutting_down();
            }
            answer
        }
        Some(fault) => fault_response(&fault),
        None => dispatch(app, req).await,
    }
}

/// Sleeps `d` unless the server stops first; whether it slept it out.
async fn wait(app: &App, d: Duration) -> bool {
    let stopped = tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = stopped(app) => true,
    };
    !stopped && !stopping(app)
}

fn shutting_down() -> Response {
    Response::error(ApiError::new(
        503,
        "unavailable",
        "the server is shutting down".to_owned(),
    ))
}

/// Runs the route off the async threads; a panic becomes a 500.
async fn dispatch(app: &App, req: Arc<Request>) -> Response {
    let state = Arc::clone(&app.state);
    let joined = tokio::task::spawn_blocking(move || {
        catch_unwind(AssertUnwindSafe(|| crate::routes::handle(&state, &req)))
    })
    .await;
    match joined {
        Ok(Ok(r)) => r,
        _ => Response::error(ApiError::new(
            500,
            "internal_error",
            "the server failed while handling this request".to_owned(),
        )),
    }
}

/// Reads the whole body, at most `limit` bytes within `timeout`: a
/// declared length over the limit is refused before a byte is read, a
/// chunked body once it passes it.
async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    use http_body::Body as _;
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large(limit));
    }
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ApiError::new(
            408,
            "request_timeout",
            format!(
                "the request body did not arrive within {} ms",
                timeout.as_millis()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Ok(Err(e)) => Err(ApiError::invalid(format!(
            "cannot read the request body: {e}"
        ))),
    }
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
        // Stalls are handled by the caller; answering 500 keeps the match
        // total without pretending success.
        Fault::Stall(_) | Fault::HoldAnswer(_) => Response::error(ApiError::new(
            500,
            "internal_error",
            "injected fault".to_owned(),
        )),
    }
}

/// Records and logs an answered request. The log has the path without query,
/// so a user code or any other query value never reaches it.
fn finish(app: &App, req: &Request, status: u16, started: Instant) {
    if let Some(recorder) = &app.recorder {
        recorder.write(req, crate::routes::template(&req.method, &req.path));
    }
    app.state.record(RequestRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        status,
        idempotency_key: req.header("idempotency-key").map(str::to_owned),
        authorization_present: req.header("authorization").is_some(),
    });
    if app.log {
        eprintln!(
            "{} {} {} {}ms",
            req.method,
            req.path,
            status,
            started.elapsed().as_millis()
        );
    }
}

/// Our answer as hyper's, always with a `Content-Length` (never chunked).
fn to_http(r: Response) -> axum::response::Response {
    let mut builder = axum::http::Response::builder()
        .status(r.status)
        .header("Content-Type", r.content_type)
        .header("Cache-Control", "no-store")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Length", r.body.len());
    for (k, v) in &r.headers {
        builder = builder.header(*k, v.as_str());
    }
    builder.body(Body::from(r.body)).unwrap_or_else(|_| {
        // Every name and value is ours; one that is not valid HTTP is a bug,
        // answered as a plain 500 rather than a dropped connection.
        let mut fallback = axum::response::Response::new(Body::empty());
        *fallback.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}
