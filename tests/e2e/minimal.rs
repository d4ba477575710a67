//! A platform that is not ours in what it offers: only `POST /api/sync/pull`
//! and `POST /api/sync/upload`, for keys, and 404 for everything else
//! (listings, `/api/api-keys/self`), as a hosted platform may do. It
//! forwards those two routes to a real local platform, and knows nothing of
//! conditional requests: `If-None-Match` is dropped on the way.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::trap::{json, Reply, Seen, Trap};

/// Starts the minimal platform in front of `upstream` (`http://127.0.0.1:P`).
pub fn start(upstream: &str) -> Trap {
    let upstream = upstream.trim_start_matches("http://").to_string();
    Trap::start(move |seen| {
        let line = seen.line();
        if line.starts_with("POST /api/sync/pull ") || line.starts_with("POST /api/sync/upload ") {
            forward(seen, &upstream)
        } else {
            json(
                404,
                r#"{"error":{"code":"not_found","message":"no route"}}"#,
            )
        }
    })
}

/// Sends the request on to `upstream` with its own Host, and reads the answer.
fn forward(seen: &Seen, upstream: &str) -> Reply {
    let mut raw = String::new();
    for (i, l) in seen.raw.split("\r\n").enumerate() {
        if l.is_empty() {
            raw.push_str("connection: close\r\n\r\n");
            let body_at = seen.raw.find("\r\n\r\n").unwrap() + 4;
            raw.push_str(&seen.raw[body_at..]);
            break;
        }
        let lower = l.to_ascii_lowercase();
        if i > 0
            && (lower.starts_with("host:")
                || lower.starts_with("connection:")
                || lower.starts_with("if-none-match:"))
        {
            continue;
        }
        raw.push_str(l);
        raw.push_str("\r\n");
        if i == 0 {
            raw.push_str(&format!("host: {upstream}\r\n"));
        }
    }
    let mut conn = TcpStream::connect(upstream).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    conn.write_all(raw.as_bytes()).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "content-type" || k == "etag"
        })
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}
