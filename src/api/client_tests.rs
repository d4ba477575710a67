//! Tests of [`Client`] against small scripted servers on 127.0.0.1: retries
//! and their bounds, status mapping, `Retry-After`, timeouts, a CONNECT
//! proxy, an extra CA over TLS, idempotency keys, masked traces, and the
//! refusal of plain http off loopback.
//!
//! Every server answers a fixed script, one connection per step, and stops by
//! itself (script done, or no client within [`ACCEPT_WINDOW`]); none is ever
//! joined, so a failing test cannot hang on one.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use super::{net, Auth, Client, Endpoint, Event, NetOptions, Observer, Retry};
use crate::error::Error;
use crate::secret::Secret;

/// The key every authenticated test client sends.
const KEY: &str = "flx_api_TESTSECRETabcdefghijklmnWXYZ";
/// How long a server waits for each connection before giving up.
const ACCEPT_WINDOW: Duration = Duration::from_secs(10);
/// The longest a server holds a connection open without answering.
const MAX_STALL: Duration = Duration::from_secs(3);

/// What a server does with one connection.
#[derive(Clone, Debug)]
enum Step {
    /// Reads the request and answers it.
    Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Reads the request, then resets the connection (RST, no answer).
    Reset,
    /// Reads the request, then stays silent for this long and closes.
    Stall(Duration),
}

fn reply(status: u16, body: &str) -> Step {
    Step::Reply {
        status,
        headers: vec![],
        body: body.to_string(),
    }
}

fn reply_with(status: u16, headers: &[(&'static str, &str)], body: &str) -> Step {
    Step::Reply {
        status,
        headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body: body.to_string(),
    }
}

fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": message}}).to_string()
}

const OK_BODY: &str = r#"{"ok":true}"#;

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    target: String,
    /// Header names lower-cased.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: Instant,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 request head and its `Content-Length` body.
fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    })
}

fn write_response(
    stream: &mut impl Write,
    status: u16,
    headers: &[(&'static str, String)],
    body: &str,
) {
    let mut head = format!(
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

/// Closes with RST instead of FIN: SO_LINGER with a zero timeout.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

/// Accepts one connection, or `None` when nobody comes within the window.
fn accept(listener: &TcpListener) -> Option<TcpStream> {
    let deadline = Instant::now() + ACCEPT_WINDOW;
    listener.set_nonblocking(true).ok()?;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                return Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => return None,
        }
    }
    None
}

/// A plain-HTTP server answering a script.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    accepted: Arc<AtomicUsize>,
}

impl Server {
    fn start(script: Vec<Step>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (reqs, acc) = (Arc::clone(&requests), Arc::clone(&accepted));
        std::thread::spawn(move || {
            for step in script {
                let Some(mut stream) = accept(&listener) else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                let Some(req) = read_request(&mut BufReader::new(&mut stream)) else {
                    continue;
                };
                reqs.lock().unwrap().push(req);
                match step {
                    Step::Reply {
                        status,
                        headers,
                        body,
                    } => {
                        write_response(&mut stream, status, &headers, &body);
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                    Step::Reset => reset(stream),
                    // Held on the side, so the next connection is answered meanwhile.
                    Step::Stall(d) => {
                        std::thread::spawn(move || {
                            std::thread::sleep(d.min(MAX_STALL));
                            drop(stream);
                        });
                    }
                }
            }
        });
        Server {
            addr,
            requests,
            accepted,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Events the client reported, as `trace: …` / `retry: …` lines.
type Events = Arc<Mutex<Vec<String>>>;

fn collector() -> (Observer, Events) {
    let events: Events = Arc::default();
    let sink = Arc::clone(&events);
    let observer: Observer = Arc::new(move |e| {
        let line = match e {
            Event::Trace(l) => format!("trace: {l}"),
            Event::Retry(l) => format!("retry: {l}"),
        };
        sink.lock().unwrap().push(line);
    });
    (observer, events)
}

/// Fast backoff, generous timeouts: tests wait on servers, not on sleeps.
fn fast() -> NetOptions {
    NetOptions {
        connect_timeout: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        retries: 4,
        backoff_base: Duration::from_millis(10),
        retry_budget: Duration::from_secs(30),
        ..NetOptions::default()
    }
}

fn auth() -> Auth {
    Auth {
        secret: Secret::new(KEY),
        origin: "environment variable FLUXLOOP_API_KEY".into(),
        is_api_key: true,
    }
}

fn client(base: &str, opts: NetOptions) -> (Client, Events) {
    let (observer, events) = collector();
    let client = Client::new(&ep(base), Some(auth()), opts, observer).expect("client");
    (client, events)
}

fn get(c: &Client) -> crate::error::Result<Json> {
    c.get::<Json>("/api/things")
}

#[test]
fn retries_transient_statuses_then_succeeds() {
    for status in [408, 429, 500, 502, 503, 504] {
        let server = Server::start(vec![
            reply(status, &error_body("busy", "try again")),
            reply(status, &error_body("busy", "try again")),
            reply(200, OK_BODY),
        ]);
        let (c, events) = client(&server.url(), fast());
        let got = get(&c).unwrap_or_else(|e| panic!("HTTP {status}: {e}"));
        assert_eq!(got["ok"], true);
        assert_eq!(server.requests().len(), 3, "HTTP {status}: attempts");
        let retries: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("retry:"))
            .cloned()
            .collect();
        assert_eq!(retries.len(), 2, "{retries:?}");
        assert!(
            retries[0].contains(&format!("HTTP {status}")),
            "{retries:?}"
        );
        assert!(retries[0].contains("(attempt 2 of 5)"), "{retries:?}");
        assert!(retries[1].contains("(attempt 3 of 5)"), "{retries:?}");
    }
}

#[test]
fn retries_connection_resets_then_succeeds() {
    let server = Server::start(vec![Step::Reset, Step::Reset, reply(200, OK_BODY)]);
    let (c, _) = client(&server.url(), fast());
    assert_eq!(get(&c).unwrap()["ok"], true);
    assert_eq!(server.accepted(), 3);
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn client_errors_are_not_retried_and_are_mapped() {
    type Check = fn(&Error) -> bool;
    let cases: Vec<(u16, String, Check, u8)> = vec![
        (
            400,
            error_body("bad_request", "limit must be positive"),
            |e| matches!(e, Error::Api { status: 400, .. }),
            1,
        ),
        (
            401,
            error_body("unauthenticated", "unknown key"),
            |e| matches!(e, Error::InvalidCredential { is_key: true, .. }),
            3,
        ),
        (
            401,
            String::new(),
            |e| matches!(e, Error::InvalidCredential { .. }),
            3,
        ),
        (
            401,
            error_body("token_expired", "access token expired"),
            |e| matches!(e, Error::TokenExpired { .. }),
            3,
        ),
        (
            401,
            error_body("key_revoked", "revoked"),
            |e| matches!(e, Error::KeyRevoked { .. }),
            3,
        ),
        (
            403,
            error_body("forbidden", "scope read"),
            |e| matches!(e, Error::PermissionDenied { .. }),
            3,
        ),
        (
            404,
            error_body("not_found", "scenario support-bot not found"),
            |e| matches!(e, Error::NotFound { what, .. } if what == "scenario support-bot"),
            5,
        ),
        (
            404,
            "nothing here".into(),
            |e| matches!(e, Error::Api { status: 404, .. }),
            5,
        ),
        (
            409,
            error_body("conflict", "already"),
            |e| matches!(e, Error::Api { status: 409, .. }),
            12,
        ),
    ];
    for (status, body, check, code) in cases {
        // A success is queued behind the error: a retry would consume it.
        let server = Server::start(vec![reply(status, &body), reply(200, OK_BODY)]);
        let (c, events) = client(&server.url(), fast());
        let err = get(&c).unwrap_err();
        assert!(check(&err), "HTTP {status} {body}: got {err:?}");
        assert_eq!(err.exit_code(), code, "HTTP {status}: {err}");
        assert_eq!(server.requests().len(), 1, "HTTP {status} was retried");
        assert!(!events
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("retry:")));
        assert!(!err.to_string().contains(KEY), "{err}");
    }
}

#[test]
fn messages_name_the_credential_origin() {
    let server = Server::start(vec![reply(401, &error_body("key_revoked", "revoked"))]);
    let (c, _) = client(&server.url(), fast());
    let err = get(&c).unwrap_err().to_string();
    assert_eq!(
        err,
        "Invalid API key (from environment variable FLUXLOOP_API_KEY): key revoked"
    );

    let server = Server::start(vec![reply(
        403,
        &error_body("forbidden", "key scope is read"),
    )]);
    let (c, _) = client(&server.url(), fast());
    let err = c
        .post::<_, Json>(
            "/api/sync/upload",
            &serde_json::json!({}),
            Retry::Idempotent,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("Permission denied: the operation needs `write`"),
        "{err}"
    );
}

#[test]
fn retry_after_is_honoured() {
    let server = Server::start(vec![
        reply_with(
            429,
            &[("Retry-After", "1")],
            &error_body("rate_limited", "slow down"),
        ),
        reply(200, OK_BODY),
    ]);
    let (c, events) = client(&server.url(), fast());
    assert_eq!(get(&c).unwrap()["ok"], true);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "second attempt after {gap:?}, Retry-After said 1 s"
    );
    assert!(gap < Duration::from_secs(5), "{gap:?}");
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|l| l.starts_with("retry:") && l.contains("retrying in 1.0s")),
        "{events:?}"
    );
}

#[test]
fn retry_after_beyond_the_budget_stops_at_once() {
    let server = Server::start(vec![
        reply_with(
            503,
            &[("Retry-After", "30")],
            &error_body("maintenance", "back soon"),
        ),
        reply(200, OK_BODY),
    ]);
    let opts = NetOptions {
        retry_budget: Duration::from_secs(2),
        ..fast()
    };
    let (c, _) = client(&server.url(), opts);
    let started = Instant::now();
    let err = get(&c).unwrap_err();
    assert!(matches!(err, Error::Api { status: 503, .. }), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn attempts_are_bounded() {
    let server = Server::start(vec![reply(500, &error_body("internal", "boom")); 6]);
    let opts = NetOptions {
        retries: 2,
        ..fast()
    };
    let (c, events) = client(&server.url(), opts);
    let err = get(&c).unwrap_err();
    assert!(matches!(err, Error::Api { status: 500, .. }), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
    let retries = events
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("retry:"))
        .count();
    assert_eq!(retries, 2);

    let server = Server::start(vec![Step::Reset; 4]);
    let (c, _) = client(
        &server.url(),
        NetOptions {
            retries: 2,
            ..fast()
        },
    );
    let err = get(&c).unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(err.to_string().ends_with("(after 3 attempts)"), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert_eq!(server.accepted(), 3);
}

#[test]
fn refused_connections_are_retried_even_when_not_idempotent() {
    // A port nobody listens on: the request never left, so repeating is safe.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (c, events) = client(
        &format!("http://127.0.0.1:{port}"),
        NetOptions {
            retries: 2,
            ..fast()
        },
    );
    let err = c
        .post::<_, Json>(
            "/api/api-keys",
            &serde_json::json!({"name": "x"}),
            Retry::Once,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(
        msg.contains("connection refused") || msg.contains("connection failed"),
        "{msg}"
    );
    assert!(msg.ends_with("(after 3 attempts)"), "{msg}");
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("retry:"))
            .count(),
        2
    );
}

#[test]
fn non_idempotent_calls_retry_only_when_nothing_happened() {
    let post = |c: &Client| {
        c.post::<_, Json>(
            "/api/api-keys",
            &serde_json::json!({"name": "ci"}),
            Retry::Once,
        )
    };

    // 500 and a reset after sending: the platform may have acted.
    for first in [
        reply(500, &error_body("internal", "boom")),
        reply(502, ""),
        Step::Reset,
    ] {
        let server = Server::start(vec![first.clone(), reply(200, OK_BODY)]);
        let (c, _) = client(&server.url(), fast());
        assert!(post(&c).is_err(), "{first:?} must not be retried");
        assert_eq!(server.requests().len(), 1, "{first:?}");
    }
    // 429 and 503: the platform says it did nothing.
    for status in [429, 503] {
        let server = Server::start(vec![
            reply(status, &error_body("busy", "later")),
            reply(200, OK_BODY),
        ]);
        let (c, _) = client(&server.url(), fast());
        assert_eq!(post(&c).unwrap()["ok"], true, "HTTP {status}");
        assert_eq!(server.requests().len(), 2, "HTTP {status}");
    }
}

#[test]
fn the_timeout_fires() {
    let server = Server::start(vec![Step::Stall(MAX_STALL)]);
    let opts = NetOptions {
        timeout: Duration::from_millis(300),
        retries: 0,
        ..fast()
    };
    let (c, _) = client(&server.url(), opts);
    let started = Instant::now();
    let err = get(&c).unwrap_err();
    let elapsed = started.elapsed();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(err.exit_code(), 4);
    assert!(elapsed >= Duration::from_millis(250), "{elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "the timeout did not fire: {elapsed:?}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_timed_out_idempotent_call_is_retried() {
    let server = Server::start(vec![Step::Stall(MAX_STALL), reply(200, OK_BODY)]);
    let opts = NetOptions {
        timeout: Duration::from_millis(300),
        retries: 1,
        ..fast()
    };
    let (c, _) = client(&server.url(), opts);
    assert_eq!(get(&c).unwrap()["ok"], true);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn every_retry_carries_the_same_idempotency_key() {
    let server = Server::start(vec![
        reply(503, &error_body("busy", "later")),
        Step::Reset,
        reply(200, OK_BODY),
    ]);
    let (c, _) = client(&server.url(), fast());
    let body = br#"{"results":[1,2,3]}"#;
    let got: Json = c
        .post_idempotent("/api/sync/upload", body, "upload-7f3a")
        .unwrap();
    assert_eq!(got["ok"], true);
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/api/sync/upload");
        assert_eq!(r.header("idempotency-key"), Some("upload-7f3a"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, body);
    }
}

#[test]
fn requests_carry_the_credential_and_user_agent_and_traces_mask_it() {
    let server = Server::start(vec![reply(200, OK_BODY)]);
    let (c, events) = client(&server.url(), fast());
    get(&c).unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/api/things");
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(req.header("accept"), Some("application/json"));
    assert_eq!(
        req.header("user-agent"),
        Some(format!("fluxloop/{}", env!("CARGO_PKG_VERSION")).as_str())
    );

    let events = events.lock().unwrap();
    let traces: Vec<&String> = events.iter().filter(|l| l.starts_with("trace:")).collect();
    assert!(
        traces
            .iter()
            .any(|l| l.contains(&format!("> GET {}/api/things", server.url()))),
        "{traces:?}"
    );
    assert!(
        traces
            .iter()
            .any(|l| l.contains("> authorization: Bearer flx_api_****WXYZ")),
        "{traces:?}"
    );
    assert!(traces.iter().any(|l| l.contains("< 200")), "{traces:?}");
    for line in events.iter() {
        assert!(!line.contains(KEY), "raw key in an event: {line}");
        assert!(
            !line.contains("TESTSECRET"),
            "part of the key in an event: {line}"
        );
    }
}

#[test]
fn anonymous_clients_send_no_authorization() {
    let server = Server::start(vec![reply(200, OK_BODY)]);
    let (observer, _) = collector();
    let c = Client::new(&ep(&server.url()), None, fast(), observer).unwrap();
    get(&c).unwrap();
    assert_eq!(server.requests()[0].header("authorization"), None);
}

#[test]
fn plain_http_off_loopback_is_refused_before_connecting() {
    // `.invalid` never resolves: had the client tried, it would have failed differently.
    for base in [
        "http://fluxloop.invalid",
        "http://api.fluxloop.invalid:8080/base",
        "http://api.localhost:9",
        "http://10.0.0.1:8787",
    ] {
        let (observer, events) = collector();
        match Client::new(&ep(base), Some(auth()), fast(), observer) {
            Err(e @ Error::InsecureEndpoint { .. }) => {
                assert_eq!(e.exit_code(), 2);
                assert!(
                    e.to_string()
                        .starts_with("refusing to send credentials over plain http"),
                    "{e}"
                );
            }
            Err(e) => panic!("{base}: {e:?}"),
            Ok(_) => panic!("{base}: credentials over plain http were allowed"),
        }
        assert!(
            events.lock().unwrap().is_empty(),
            "{base}: the client did something"
        );
    }
    // Loopback is fine, and so is plain http without credentials.
    for base in ["http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"] {
        let (observer, _) = collector();
        assert!(
            Client::new(&ep(base), Some(auth()), fast(), observer).is_ok(),
            "{base}"
        );
    }
    // Nor without an Authorization header: the body of a refresh, logout or
    // device poll carries a secret too.
    let (observer, _) = collector();
    assert!(matches!(
        Client::new(&ep("http://fluxloop.invalid"), None, fast(), observer),
        Err(Error::InsecureEndpoint { .. })
    ));
}

fn ep(url: &str) -> Endpoint {
    Endpoint::parse(url).unwrap()
}

#[test]
fn a_body_that_is_not_json_is_a_clear_error() {
    let server = Server::start(vec![reply(200, "<html>captive portal</html>")]);
    let (c, _) = client(&server.url(), fast());
    let err = get(&c).unwrap_err().to_string();
    assert!(err.contains("not the expected JSON"), "{err}");
    assert!(
        err.contains("is the endpoint a FluxLoop platform?"),
        "{err}"
    );
}

/// A CONNECT proxy on 127.0.0.1 that tunnels to loopback targets only.
struct Proxy {
    url: String,
    connects: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(max_conns: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connects = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&connects);
        std::thread::spawn(move || {
            for _ in 0..max_conns {
                let Some(mut client) = accept(&listener) else {
                    return;
                };
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let Some(req) = read_request(&mut reader) else {
                    continue;
                };
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", req.method, req.target));
                // Never tunnel anywhere but this machine's loopback.
                let upstream = match req.target.strip_prefix("127.0.0.1:") {
                    Some(_) if req.method == "CONNECT" => TcpStream::connect(&req.target).ok(),
                    _ => None,
                };
                let Some(upstream) = upstream else {
                    write_response(&mut client, 403, &[], "");
                    continue;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                let mut up_read = upstream.try_clone().unwrap();
                let mut client_write = client.try_clone().unwrap();
                let pump = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_read, &mut client_write);
                    let _ = client_write.shutdown(Shutdown::Write);
                });
                let mut up_write = upstream;
                // Whatever the reader buffered past the CONNECT head goes first.
                let _ = up_write.write_all(reader.buffer());
                let _ = std::io::copy(&mut client, &mut up_write);
                let _ = up_write.shutdown(Shutdown::Write);
                let _ = pump.join();
            }
        });
        Proxy { url, connects }
    }
}

#[test]
fn the_proxy_is_used() {
    let server = Server::start(vec![reply(200, OK_BODY)]);
    let proxy = Proxy::start(1);
    let opts = NetOptions {
        proxy: Some((proxy.url.clone(), "HTTPS_PROXY")),
        ..fast()
    };
    let (c, events) = client(&server.url(), opts);
    assert_eq!(get(&c).unwrap()["ok"], true);
    assert_eq!(
        *proxy.connects.lock().unwrap(),
        vec![format!("CONNECT {}", server.addr)]
    );
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let events = events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|l| l.contains(&format!("* proxy {} (from HTTPS_PROXY)", proxy.url))),
        "{events:?}"
    );
}

#[test]
fn proxy_credentials_are_masked_in_traces() {
    let (observer, events) = collector();
    let opts = NetOptions {
        proxy: Some(("http://user:hunter2@127.0.0.1:9".into(), "HTTPS_PROXY")),
        ..fast()
    };
    Client::new(&ep("https://127.0.0.1:9"), Some(auth()), opts, observer).unwrap();
    let events = events.lock().unwrap();
    assert!(
        events.iter().any(|l| l.contains("http://****@127.0.0.1:9")),
        "{events:?}"
    );
    assert!(!events.iter().any(|l| l.contains("hunter2")), "{events:?}");
}

/// A private CA and a certificate it signed for 127.0.0.1 and localhost.
struct Pki {
    ca_pem: String,
    server_cert: rustls::pki_types::CertificateDer<'static>,
    server_key: Vec<u8>,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fluxloop test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "fluxloop test server");
    let server_cert = params.signed_by(&server_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.der().clone(),
        server_key: server_key.serialize_der(),
    }
}

/// A TLS server on 127.0.0.1 answering `200 {"ok":true}` to each of `conns`
/// connections that complete a handshake. Counts connections and answers.
fn tls_server(pki: &Pki, conns: usize) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key.clone().into());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pki.server_cert.clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (count, acc) = (Arc::clone(&served), Arc::clone(&accepted));
    std::thread::spawn(move || {
        for _ in 0..conns {
            let Some(tcp) = accept(&listener) else { return };
            acc.fetch_add(1, Ordering::SeqCst);
            let conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            // A client that rejects the certificate ends here.
            if read_request(&mut BufReader::new(&mut tls)).is_none() {
                continue;
            }
            count.fetch_add(1, Ordering::SeqCst);
            write_response(&mut tls, 200, &[], OK_BODY);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (addr, served, accepted)
}

#[test]
fn an_extra_ca_is_added_to_the_bundled_roots() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("corp-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (addr, served, accepted) = tls_server(&pki, 2);
    let base = format!("https://{addr}");

    // The bundled roots alone do not know the private CA; and an untrusted
    // certificate stays untrusted, so it is not retried.
    let (c, events) = client(&base, fast());
    let err = get(&c).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert!(msg.contains("TLS error: invalid peer certificate"), "{msg}");
    assert!(msg.contains("--ca-cert or SSL_CERT_FILE"), "{msg}");
    assert!(!msg.contains("attempts"), "{msg}");
    assert_eq!(err.exit_code(), 4);
    assert!(!events
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("retry:")));
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(served.load(Ordering::SeqCst), 0);

    // With the CA file it verifies.
    let opts = NetOptions {
        ca_files: vec![ca_file.clone()],
        ..fast()
    };
    let (c, _) = client(&base, opts.clone());
    assert_eq!(get(&c).unwrap()["ok"], true);
    assert_eq!(served.load(Ordering::SeqCst), 1);

    // Added, not replacing: the Mozilla roots are still there.
    match net::root_certs(&opts).unwrap() {
        ureq::tls::RootCerts::Specific(all) => {
            assert_eq!(
                all.len(),
                webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() + 1
            );
            assert!(all.len() > 100, "{} roots", all.len());
        }
        _ => panic!("expected the bundled roots plus the CA"),
    }
}

#[test]
fn a_ca_directory_is_read_like_openssl() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("corp.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
    let (addr, _, _) = tls_server(&pki, 1);
    let opts = NetOptions {
        ca_dir: Some(dir.path().to_path_buf()),
        ..fast()
    };
    let (c, _) = client(&format!("https://{addr}"), opts);
    assert_eq!(get(&c).unwrap()["ok"], true);
}

#[test]
fn a_ca_file_without_certificates_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.pem");
    std::fs::write(&path, "just text\n").unwrap();
    let missing: PathBuf = dir.path().join("missing.pem");
    for (file, want) in [
        (&path, "no PEM certificate found in"),
        (&missing, "cannot read CA certificate"),
    ] {
        let (observer, _) = collector();
        let opts = NetOptions {
            ca_files: vec![file.clone()],
            ..fast()
        };
        let err = match Client::new(&ep("https://127.0.0.1:9"), Some(auth()), opts, observer) {
            Err(e) => e,
            Ok(_) => panic!("{} accepted", file.display()),
        };
        assert!(err.to_string().contains(want), "{err}");
    }
}
