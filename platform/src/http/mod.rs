//! The HTTP/1.1 wire: a blocking listener, one thread per open connection (at
//! most [`MAX_CONNECTIONS`]), request parsing with limits, injected faults,
//! the request log, and the JSON error shape.
//!
//! Why not tiny_http: a [`Fault::Close`] must drop the TCP connection without a
//! response, and tiny_http keeps the socket inside its connection object (an
//! unanswered request gets a 500, a taken writer leaves the client hanging).
//! Owning the socket also lets an oversized body be refused from its
//! `Content-Length` before a byte of it is read, and every wait be bounded so
//! that dropping the server returns at once.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod message;

pub(crate) use message::{ApiError, Request, Response};
use serde_json::json;

use crate::store::State;
use crate::{Fault, PlatformError, RequestRecord};

/// Largest accepted request body (an upload chunk of 1000 runs fits easily).
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;
/// Largest accepted request line plus headers.
const MAX_HEAD: usize = 32 * 1024;
/// Connections served at once; more are answered 503 and closed.
const MAX_CONNECTIONS: usize = 64;
/// How often blocked reads wake up to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);
/// An idle keep-alive connection, or a request that is slow to arrive, is
/// closed after this long.
const IDLE: Duration = Duration::from_secs(60);

/// The listener and its threads.
pub(crate) struct Server {
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` (loopback only) and starts accepting.
    pub(crate) fn start(addr: &str, state: Arc<State>, log: bool) -> Result<Server, PlatformError> {
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
        let listener = TcpListener::bind(&candidates[..]).map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let shutdown = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&shutdown);
        let acceptor = std::thread::Builder::new()
            .name("flx-accept".to_owned())
            .spawn(move || accept_loop(listener, state, flag, log))
            .map_err(bind_err)?;
        Ok(Server {
            addr: local,
            shutdown,
            acceptor: Some(acceptor),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // `accept` blocks; a connection to ourselves wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(listener: TcpListener, state: Arc<State>, shutdown: Arc<AtomicBool>, log: bool) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for stream in listener.incoming() {
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        workers.retain(|h| !h.is_finished());
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let e = ApiError::new(503, "unavailable", "too many open connections".to_owned());
            write_response(&mut stream, &Response::error(e), true, false);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (state, flag, count) = (
            Arc::clone(&state),
            Arc::clone(&shutdown),
            Arc::clone(&active),
        );
        let spawned = std::thread::Builder::new()
            .name("flx-conn".to_owned())
            .spawn(move || {
                serve_connection(stream, &state, &flag, log);
                count.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(_) => {
                active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
    for h in workers {
        let _ = h.join();
    }
}

/// Why reading stopped.
enum ReadEnd {
    /// Peer closed, socket error, or shutdown: just close.
    Gone,
    /// The peer is too slow: answer 408 if something was started.
    TimedOut,
}

/// A socket with the bytes read past the current request.
struct Conn<'a> {
    stream: TcpStream,
    buf: Vec<u8>,
    shutdown: &'a AtomicBool,
}

impl Conn<'_> {
    /// Reads at least one more byte into `buf`.
    fn fill(&mut self, deadline: Instant) -> Result<(), ReadEnd> {
        let mut tmp = [0u8; 16 * 1024];
        loop {
            if self.shutdown.load(Ordering::SeqCst) {
                return Err(ReadEnd::Gone);
            }
            if Instant::now() >= deadline {
                return Err(ReadEnd::TimedOut);
            }
            match self.stream.read(&mut tmp) {
                Ok(0) => return Err(ReadEnd::Gone),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Err(ReadEnd::Gone),
            }
        }
    }

    /// Takes `n` bytes off the front of the buffer, reading as needed.
    fn take(&mut self, n: usize, deadline: Instant) -> Result<Vec<u8>, ReadEnd> {
        while self.buf.len() < n {
            self.fill(deadline)?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Takes one CRLF-terminated line (without the CRLF).
    fn line(&mut self, deadline: Instant) -> Result<Vec<u8>, ReadEnd> {
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                let mut line = self.take(pos + 2, deadline)?;
                line.truncate(pos);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ReadEnd::TimedOut);
            }
            self.fill(deadline)?;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The request line and headers.
struct Head {
    method: String,
    target: String,
    http10: bool,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some()
        || method.is_empty()
        || !method.bytes().all(|b| b.is_ascii_uppercase())
        || !target.starts_with('/')
    {
        return None;
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => return None,
    };
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':')?;
        if k.is_empty() || k.bytes().any(|b| b.is_ascii_whitespace()) {
            return None;
        }
        headers.push((k.to_owned(), v.trim().to_owned()));
    }
    Some(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        http10,
        headers,
    })
}

fn serve_connection(stream: TcpStream, state: &State, shutdown: &AtomicBool, log: bool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let _ = stream.set_write_timeout(Some(IDLE));
    let Ok(local_addr) = stream.local_addr() else {
        return;
    };
    let mut conn = Conn {
        stream,
        buf: Vec::new(),
        shutdown,
    };
    loop {
        let started = Instant::now();
        let deadline = started + IDLE;
        // Request line and headers.
        let head_end = loop {
            if let Some(pos) = find(&conn.buf, b"\r\n\r\n") {
                break pos;
            }
            if conn.buf.len() > MAX_HEAD {
                let e = ApiError::new(
                    431,
                    "invalid_request",
                    "request headers too large".to_owned(),
                );
                write_response(&mut conn.stream, &Response::error(e), true, false);
                return;
            }
            match conn.fill(deadline) {
                Ok(()) => {}
                Err(ReadEnd::TimedOut) if !conn.buf.is_empty() => {
                    let e = ApiError::new(408, "invalid_request", "request timed out".to_owned());
                    write_response(&mut conn.stream, &Response::error(e), true, false);
                    return;
                }
                Err(_) => return,
            }
        };
        let Ok(raw_head) = conn.take(head_end + 4, deadline) else {
            return;
        };
        let Some(head) = parse_head(&raw_head[..head_end]) else {
            let e = ApiError::invalid("malformed HTTP request".to_owned());
            write_response(&mut conn.stream, &Response::error(e), true, false);
            return;
        };
        let mut close = head.http10
            || head
                .header("connection")
                .is_some_and(|v| v.to_ascii_lowercase().contains("close"));
        if head.http10
            && head
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive"))
        {
            close = false;
        }
        let head_req = head.method == "HEAD";
        let body = match read_body(&mut conn, &head, deadline) {
            Ok(b) => b,
            Err(Some(e)) => {
                let (path, _) = split_target(&head.target);
                state.record(RequestRecord {
                    method: head.method.clone(),
                    path: path.clone(),
                    status: e.status,
                    idempotency_key: head.header("idempotency-key").map(str::to_owned),
                    authorization_present: head.header("authorization").is_some(),
                });
                if log {
                    eprintln!("{} {} {} 0ms", head.method, path, e.status);
                }
                write_response(&mut conn.stream, &Response::error(e), true, head_req);
                return;
            }
            Err(None) => return,
        };
        let (path, query) = split_target(&head.target);
        let req = Request {
            method: head.method,
            path,
            query: crate::util::parse_form(&query),
            headers: head.headers,
            body,
            local_addr,
        };
        let fault = state.take_fault(&req.path);
        let response = match fault {
            Some(Fault::Close) => {
                finish(state, &req, 0, started, log);
                return;
            }
            Some(Fault::Stall(d)) => {
                let until = Instant::now() + d;
                while Instant::now() < until {
                    if shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                }
                dispatch(state, &req)
            }
            Some(fault) => fault_response(&fault),
            None => dispatch(state, &req),
        };
        finish(state, &req, response.status, started, log);
        if !write_response(&mut conn.stream, &response, close, head_req) || close {
            return;
        }
    }
}

/// Reads the body per `Content-Length` or chunked encoding. `Err(Some)` is an
/// answer to send before closing; `Err(None)` means the peer is gone.
fn read_body(
    conn: &mut Conn<'_>,
    head: &Head,
    deadline: Instant,
) -> Result<Vec<u8>, Option<ApiError>> {
    let too_large = || {
        Some(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "request body is larger than {} MiB",
                MAX_BODY / (1024 * 1024)
            ),
        ))
    };
    let timed_out = |e: ReadEnd| match e {
        ReadEnd::Gone => None,
        ReadEnd::TimedOut => Some(ApiError::new(
            408,
            "invalid_request",
            "request timed out".to_owned(),
        )),
    };
    let expect_continue = head
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if let Some(te) = head.header("transfer-encoding") {
        if !te.eq_ignore_ascii_case("chunked") {
            return Err(Some(ApiError::invalid(format!(
                "unsupported Transfer-Encoding `{te}`"
            ))));
        }
        if expect_continue {
            let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let mut body = Vec::new();
        loop {
            let line = conn.line(deadline).map_err(timed_out)?;
            let text = String::from_utf8_lossy(&line);
            let size_hex = text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| Some(ApiError::invalid("malformed chunked body".to_owned())))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !conn.line(deadline).map_err(timed_out)?.is_empty() {}
                return Ok(body);
            }
            if body.len().saturating_add(size) > MAX_BODY {
                return Err(too_large());
            }
            let mut chunk = conn.take(size + 2, deadline).map_err(timed_out)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    }
    let Some(len) = head.header("content-length") else {
        return Ok(Vec::new());
    };
    let len: usize = len
        .parse()
        .map_err(|_| Some(ApiError::invalid(format!("invalid Content-Length `{len}`"))))?;
    if len > MAX_BODY {
        return Err(too_large());
    }
    if expect_continue && len > 0 {
        let _ = conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    conn.take(len, deadline).map_err(timed_out)
}

/// Splits `/path?query`.
fn split_target(target: &str) -> (String, String) {
    match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.to_owned(), String::new()),
    }
}

/// Runs the route; a panic in a handler becomes a 500, never a dead connection.
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
        // Close and Stall are handled by the caller; answering 500 keeps the
        // match total without pretending success.
        Fault::Close | Fault::Stall(_) => Response::error(ApiError::new(
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

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes the response; `false` when the peer is gone.
fn write_response(stream: &mut TcpStream, r: &Response, close: bool, head_only: bool) -> bool {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&r.body);
    }
    stream
        .write_all(&bytes)
        .and_then(|()| stream.flush())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let h =
            parse_head(b"POST /api/x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3").expect("head");
        assert_eq!(h.method, "POST");
        assert_eq!(h.header("content-length"), Some("3"));
        assert!(parse_head(b"GET x HTTP/1.1").is_none());
        assert!(parse_head(b"GET / HTTP/2").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbad header").is_none());
    }
}
