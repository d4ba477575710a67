//! Property test ("fuzz target") of the platform's request parsing, over
//! real HTTP on 127.0.0.1: arbitrary bodies (bytes and JSON) to every route,
//! with and without a valid key, and arbitrary raw request bytes. Every
//! request gets one HTTP answer (JSON for `/api/...`, never a 5xx from a
//! panic) or a closed connection for bytes that are not HTTP, and the
//! server keeps serving. Longer runs: `PROPTEST_CASES=100000 cargo test -p
//! fluxloop-platform --test fuzz_http`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use fluxloop_platform::{Config, Platform, ROUTES};
use proptest::prelude::*;

struct Shared {
    platform: Platform,
    key: String,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| {
        let platform = Platform::start(Config::default()).unwrap();
        let demo = platform.seed_demo().unwrap();
        Shared {
            key: demo.key,
            platform,
        }
    })
}

/// Sends raw bytes, returns the raw answer (empty when the server closed).
fn exchange(request: &[u8]) -> Vec<u8> {
    let s = shared();
    let mut conn = TcpStream::connect(s.platform.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.write_all(request);
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out);
    out
}

fn path_for(template: &str, id: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { id } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

fn check(route: usize, answer: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(answer);
    prop_assert!(text.starts_with("HTTP/1.1 "), "no HTTP answer: {text:?}");
    let status: u16 = text[9..12].parse().unwrap();
    prop_assert!(
        status != 500,
        "a 500 (handler panic?) on {}: {text}",
        ROUTES[route].path
    );
    // The request must reach the route, not stop at the Host check.
    prop_assert!(status != 421, "Host refused: {text}");
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
    if ROUTES[route].path.starts_with("/api/") {
        prop_assert!(
            serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "not JSON: {body:?}"
        );
    }
    Ok(())
}

fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,16}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("bundle_version_id".to_string()),
                    Just("runs".to_string()),
                    Just("run_batch".to_string()),
                    Just("id".to_string()),
                    Just("name".to_string()),
                    Just("scope".to_string()),
                    Just("refresh_token".to_string()),
                    Just("device_code".to_string()),
                    Just("scenario_id".to_string()),
                    Just("run_results".to_string()),
                    Just("key_id".to_string()),
                    ".{0,6}",
                ],
                inner,
                0..5,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_body_to_any_route_gets_a_clean_answer(
        route in 0..ROUTES.len(),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..256),
            json().prop_map(|v| v.to_string().into_bytes()),
        ],
        authed in any::<bool>(),
        id in "[a-zA-Z0-9%._-]{0,12}",
    ) {
        let r = &ROUTES[route];
        let path = path_for(r.path, if id.is_empty() { "x" } else { &id });
        let mut req = format!(
            "{} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            r.method,
            shared().platform.addr(),
            body.len()
        );
        if authed {
            req.push_str(&format!("Authorization: Bearer {}\r\n", shared().key));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(&body);
        let answer = exchange(&bytes);
        check(route, &answer)?;
    }

    #[test]
    fn raw_garbage_never_breaks_the_server(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let answer = exchange(&bytes);
        if !answer.is_empty() {
            prop_assert!(answer.starts_with(b"HTTP/1."), "{:?}", String::from_utf8_lossy(&answer));
        }
        // Still serving.
        let ok = exchange(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        prop_assert!(ok.starts_with(b"HTTP/1.1 "), "{:?}", String::from_utf8_lossy(&ok));
    }
}
