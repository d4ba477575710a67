//! The wire: JSON errors for unknown routes, wrong methods and bad bodies,
//! size limits, injected faults, shutdown, and the OpenAPI document.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use fluxloop_platform::{Config, Fault, Platform, ROUTES};
use serde_json::Value;

use crate::Env;

#[test]
fn unknown_routes_methods_and_bodies_get_json_errors() {
    let e = Env::new();
    let demo = e.demo();
    e.get("/api/nope").send().expect_error(404, "not_found");
    let r = e
        .call("DELETE", "/api/projects")
        .send()
        .expect_error(405, "method_not_allowed");
    assert_eq!(r.allow.as_deref(), Some("GET"));
    e.get("/api/sync/pull")
        .send()
        .expect_error(405, "method_not_allowed");
    for bad in [
        "{",
        "[1]",
        "\"x\"",
        "{\"include_inputs\": \"yes\"}",
        "{\"project_id\": 5}",
    ] {
        e.post("/api/sync/pull")
            .auth(&demo.key)
            .raw(bad)
            .send()
            .expect_error(400, "invalid_request");
    }
    e.post("/api/cli-connect/complete")
        .raw("nope")
        .send()
        .expect_error(400, "invalid_request");
    e.get("/api/health").send().expect(200);
}

#[test]
fn body_over_the_limit_is_refused_with_413() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    write!(
        s,
        "POST /api/sync/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        e.p.addr(),
        64 * 1024 * 1024
    )
    .expect("write");
    // The answer comes before any of the body is sent; the server keeps the
    // connection (it would discard the body), so read one response, not to EOF.
    let text = read_response(&mut s);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("\"payload_too_large\""), "{text}");
    // Issue 13: the answer names the limit, so a client can say what to change.
    assert!(
        text.contains("\"request body is larger than 32 MiB\""),
        "{text}"
    );
}

#[test]
fn chunked_body_over_the_limit_is_refused_with_413() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    write!(
        s,
        "POST /api/sync/upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        e.p.addr()
    )
    .expect("write");
    // One byte over the limit, then the last chunk. The server answers once
    // it has read past the limit and drops the rest, so a write may fail.
    let chunk = vec![b' '; 1024 * 1024];
    let _ = (0..32)
        .try_for_each(|_| {
            write!(s, "{:x}\r\n", chunk.len())?;
            s.write_all(&chunk)?;
            s.write_all(b"\r\n")
        })
        .and_then(|()| s.write_all(b"1\r\n \r\n0\r\n\r\n"));
    let text = read_response(&mut s);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("\"payload_too_large\""), "{text}");
    assert!(e.p.requests().iter().any(|r| r.status == 413));
}

/// Reads one response: the head, then `Content-Length` bytes of body.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).expect("read head");
        assert_eq!(
            n,
            1,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .expect("Content-Length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("read body");
    head + &String::from_utf8_lossy(&body)
}

#[test]
fn garbage_on_the_wire_gets_400_not_a_hang() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    s.write_all(b"HELLO\r\n\r\n").expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
}

#[test]
fn injected_faults_replace_processing_then_service_resumes() {
    let e = Env::new();
    let demo = e.demo();
    let body = e.upload_body(&demo, &demo.key, 1);
    e.p.inject_faults(
        "/api/sync/upload",
        vec![
            Fault::Status {
                status: 429,
                retry_after: Some(2),
            },
            Fault::Status {
                status: 503,
                retry_after: None,
            },
            Fault::NonJson,
            Fault::Truncated,
            Fault::Stall(Duration::from_millis(300)),
        ],
    );
    let up = || {
        e.post("/api/sync/upload")
            .auth(&demo.key)
            .header("Idempotency-Key", "f")
            .json(&body)
    };
    let r = up().send().expect_error(429, "rate_limited");
    assert_eq!(r.retry_after.as_deref(), Some("2"));
    up().send().expect_error(503, "unavailable");
    assert_eq!(up().send().expect(200).text, "<html>oops");
    let r = up().send().expect(200);
    assert!(serde_json::from_str::<Value>(&r.text).is_err());
    assert!(
        e.p.batch_ids().expect("ids").is_empty(),
        "faults must not apply the request"
    );
    let started = std::time::Instant::now();
    up().send().expect(200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    up().send().expect(200);
    assert_eq!(e.p.batch_ids().expect("ids").len(), 1);
    let statuses: Vec<u16> =
        e.p.requests()
            .iter()
            .filter(|r| r.path == "/api/sync/upload")
            .map(|r| r.status)
            .collect();
    assert_eq!(statuses, vec![429, 503, 200, 200, 200, 200]);
    assert!(e
        .p
        .requests()
        .iter()
        .all(|r| r.path != "/api/sync/upload" || r.authorization_present));
}

#[test]
fn dropping_a_platform_returns_quickly_even_with_open_connections() {
    let e = Env::new();
    let _idle = TcpStream::connect(e.p.addr()).expect("connect");
    e.get("/api/health").send().expect(200);
    let started = std::time::Instant::now();
    drop(e);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_a_platform_returns_quickly_while_a_body_never_arrives() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    write!(
        s,
        "POST /api/sync/pull HTTP/1.1\r\nHost: {}\r\nContent-Length: 5000\r\n\r\n{{",
        e.p.addr()
    )
    .expect("write");
    let addr = e.p.addr();
    // The route is left waiting for the rest of the body.
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    drop(e);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener must close with the platform"
    );
}

#[test]
fn an_unparsable_content_length_is_refused() {
    let e = Env::new();
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    write!(
        s,
        "POST /api/cli-connect/complete HTTP/1.1\r\nHost: {}\r\nContent-Length: abc\r\n\r\n",
        e.p.addr()
    )
    .expect("write");
    // hyper's parser refuses it before any route runs, with its own empty
    // 400 and a closed connection: never read as "no body".
    let text = read_response(&mut s);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
}

#[test]
fn non_loopback_addresses_are_refused() {
    let r = Platform::start(Config {
        addr: "0.0.0.0:0".to_owned(),
        ..Config::default()
    });
    assert!(r.is_err());
}

#[test]
fn openapi_document_matches_the_route_table() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml");
    assert!(text.starts_with("openapi: 3."));
    let mut documented = Vec::new();
    let mut path: Option<String> = None;
    for line in text.lines() {
        // Paths sit two spaces in under `paths:`, methods four spaces in.
        if let Some(p) = line.strip_prefix("  /").and_then(|p| p.strip_suffix(':')) {
            path = Some(format!("/{p}").trim_matches('\'').to_owned());
        } else if let (Some(p), Some(m)) = (
            &path,
            line.strip_prefix("    ").and_then(|m| m.strip_suffix(':')),
        ) {
            if ["get", "post", "put", "delete", "patch"].contains(&m) {
                documented.push(format!("{} {p}", m.to_uppercase()));
            }
        } else if !line.starts_with(' ') && !line.is_empty() {
            path = None;
        }
    }
    let mut served: Vec<String> = ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}
