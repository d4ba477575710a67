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
        "POST /api/sync/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        64 * 1024 * 1024
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(text.contains("\"payload_too_large\""), "{text}");
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
            Fault::Close,
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
    let mut s = TcpStream::connect(e.p.addr()).expect("connect");
    write!(
        s,
        "POST /api/sync/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
    )
    .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    assert_eq!(text, "", "Close must send nothing");
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
    assert_eq!(statuses, vec![429, 503, 200, 200, 0, 200, 200]);
    assert!(e
        .p
        .requests()
        .iter()
        .all(|r| r.path != "/api/sync/upload" || r.authorization_present || r.status == 0));
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
