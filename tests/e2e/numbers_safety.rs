//! Issue 13: huge numbers in `fluxloop.yaml`, the environment and server
//! answers end in a clear error (exit 2 for our settings; a server's
//! answer is refused as not a FluxLoop answer), never a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use crate::fixtures::setup;
use crate::util::Sandbox;

#[test]
fn regression_13_huge_numbers_in_fluxloop_yaml_are_config_errors() {
    let fx = setup(0);
    for (yaml, message) in [
        (
            "api:\n  timeout: 1e300\n",
            "api.timeout: must be a number of seconds above 0 and at most 86400, not 1e300",
        ),
        (
            "api:\n  connect_timeout: .inf\n",
            "api.connect_timeout: must be a number of seconds above 0 and at most 86400, not inf",
        ),
        (
            "api:\n  retries: 4294967295\n",
            "api.retries: must be a whole number of retries from 0 to 100, not 4294967295",
        ),
    ] {
        let path = fx.sb.write("fluxloop.yaml", yaml);
        let r = fx.cmd(&["sync", "pull", "--yes"]).run();
        r.code(2);
        // The position part is serde-saphyr's wording; the message is ours.
        let first = r.stderr.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("error: {}", path.display())) && first.ends_with(message),
            "{yaml:?}: {}",
            r.stderr
        );
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
}

#[test]
fn regression_13_huge_numbers_in_the_environment_are_config_errors() {
    let fx = setup(0);
    for (var, value, message) in [
        (
            "FLUXLOOP_HTTP_TIMEOUT",
            "1e300",
            "error: FLUXLOOP_HTTP_TIMEOUT=\"1e300\" must be a number of seconds above 0 and at most 86400, not 1e300\n  hint: set FLUXLOOP_HTTP_TIMEOUT to seconds, e.g. 30\n",
        ),
        (
            "FLUXLOOP_HTTP_RETRIES",
            "4294967295",
            "error: FLUXLOOP_HTTP_RETRIES=\"4294967295\" must be a whole number of retries from 0 to 100, not 4294967295\n  hint: set it to the number of retries, e.g. 4\n",
        ),
    ] {
        let r = fx.cmd(&["sync", "pull", "--yes"]).env(var, value).run();
        r.code(2);
        assert_eq!(r.stderr, message);
    }
}

/// A server that answers every request with `body` (HTTP 200, JSON).
fn answer_all(body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut discard = vec![0; length];
            let _ = reader.read_exact(&mut discard);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn regression_13_a_huge_device_interval_from_the_server_is_refused_not_a_panic() {
    let url = answer_all(
        r#"{"device_code":"d","user_code":"ABCD-EFGH","verification_url":"http://127.0.0.1/x","expires_in":600,"interval":18446744073709551615}"#,
    );
    let sb = Sandbox::new();
    let r = sb
        .cmd(&["auth", "login", "--no-browser", "--endpoint", &url])
        .run();
    // A platform's answer that cannot be used is a network-class failure
    // (exit 4), worded as the seed's "Authentication failed"; no panic.
    r.code(4);
    assert_eq!(
        r.stderr,
        format!("error: Authentication failed: cannot reach {url}/api/cli-connect/start: POST answered HTTP 200 with a body that is not the expected JSON (18446744073709551615 seconds is more than a day (86400) at line 1 column 132); is the endpoint a FluxLoop platform?\n  hint: check: 1. browser opened? 2. network connection? 3. ad blockers disabled? (and the endpoint: `fluxloop config get endpoint`)\n")
    );
}
