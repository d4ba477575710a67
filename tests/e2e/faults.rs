//! Fault injection: `sync pull` and `sync upload` against a platform that
//! answers 429/5xx, non-JSON or truncated bodies (`Platform::inject_faults`),
//! and behind a TCP proxy that drops, resets or stalls connections
//! (`proxy.rs`). Each case either succeeds after retries with exactly one
//! copy of every run on the platform, or fails within a bounded time with
//! exit 4 and a clear message, and a later rerun then stores every run once.

use std::time::{Duration, Instant};

use fluxloop_platform::Fault;

use crate::fixtures::{setup, Fx};
use crate::proxy::{Plan, Proxy};
use crate::util::Run;

/// Worst case with the fixture's knobs: 4 attempts × 2 s + backoff, plus
/// process start; anything beyond this is a hang.
const BOUND: Duration = Duration::from_secs(20);

const UPLOAD: &str = "POST /api/sync/upload";
const PULL: &str = "POST /api/sync/pull";

fn timed(f: impl FnOnce() -> Run) -> (Run, Duration) {
    let t = Instant::now();
    let r = f();
    let took = t.elapsed();
    assert!(took < BOUND, "took {took:?}: {r:?}");
    (r, took)
}

fn status(status: u16, retry_after: Option<u64>) -> Fault {
    Fault::Status {
        status,
        retry_after,
    }
}

/// No panic, no Rust backtrace, one `error:` line for a failure.
#[track_caller]
fn clean(r: &Run) {
    for s in [&r.stdout, &r.stderr] {
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!s.contains("panicked"), "panic: {r:?}");
        // substring: an absence; a panic message could be anywhere in stderr
        assert!(!s.contains("RUST_BACKTRACE"), "panic: {r:?}");
    }
}

#[test]
fn upload_survives_status_faults_exactly_once() {
    let fx = setup(0);
    fx.results("support-bot");
    fx.p.inject_faults(
        "/api/sync/upload",
        vec![status(429, Some(1)), status(500, None), status(502, None)],
    );
    let (r, took) = timed(|| fx.cmd(&["sync", "upload"]).run());
    clean(&r);
    // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
    r.ok().stdout_has("Uploaded 10 runs").stderr_has("retrying");
    assert!(
        took >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured ({took:?})"
    );
    fx.assert_stored_once(10);
    let statuses: Vec<u16> =
        fx.p.requests()
            .iter()
            .filter(|q| q.path == "/api/sync/upload")
            .map(|q| q.status)
            .collect();
    assert_eq!(statuses, [429, 500, 502, 200]);
}

#[test]
fn upload_gives_up_on_persistent_5xx_with_exit_4_then_a_rerun_stores_once() {
    let fx = setup(0);
    fx.results("support-bot");
    fx.p.inject_faults("/api/sync/upload", vec![status(503, None); 4]);
    let (r, _) = timed(|| fx.cmd(&["sync", "upload"]).run());
    clean(&r);
    // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
    r.code(4).stderr_has("HTTP 503").stderr_has("error:");
    assert!(fx.p.batch_ids().unwrap().is_empty());
    fx.cmd(&["sync", "upload"]).run().ok();
    fx.assert_stored_once(10);
}

#[test]
fn non_json_and_truncated_bodies_fail_clearly_and_store_nothing_twice() {
    for fault in [Fault::NonJson, Fault::Truncated] {
        let fx = setup(0);
        fx.results("support-bot");
        fx.p.inject_faults("/api/sync/upload", vec![fault.clone()]);
        let (r, _) = timed(|| fx.cmd(&["sync", "upload"]).run());
        clean(&r);
        if r.code == Some(0) {
            // Retried: the injected answer replaced processing.
            fx.assert_stored_once(10);
        } else {
            // substring: the JSON parse error differs per corrupted body, and the rest names the server's random port
            r.code(4).stderr_has("not the expected JSON");
            fx.cmd(&["sync", "upload"]).run().ok();
            fx.assert_stored_once(10);
        }

        // The same faults on pull: a clear failure, and no pulled files
        // half-written.
        let fx = setup(0);
        fx.p.inject_faults("/api/sync/pull", vec![fault.clone()]);
        let (r, _) = timed(|| fx.cmd(&["sync", "pull", "--yes"]).run());
        clean(&r);
        if r.code != Some(0) {
            // substring: the JSON parse error differs per corrupted body, and the rest names the server's random port
            r.code(4).stderr_has("not the expected JSON");
            let pulled = fx.sb.work().join(".fluxloop/scenarios/support-bot/pulled");
            assert!(!pulled.exists(), "{fault:?}: a failed pull wrote files");
        }
        assert_eq!(
            fx.cmd(&["sync", "pull", "--yes"]).run().ok().stdout,
            "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
        );
    }
}

#[test]
fn pull_survives_status_faults() {
    let fx = setup(0);
    fx.p.inject_faults(
        "/api/sync/pull",
        vec![status(429, Some(1)), status(500, None), status(503, None)],
    );
    let (r, _) = timed(|| fx.cmd(&["sync", "pull", "--yes"]).run());
    clean(&r);
    // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
    r.ok().stdout_has("Pulled 10 inputs").stderr_has("retrying");
}

#[test]
fn platform_stall_longer_than_the_timeout_is_retried_without_duplicates() {
    // The first attempt times out on the client but is then processed by the
    // platform; the retry carries the same Idempotency-Key and is replayed.
    let fx = setup(0);
    fx.results("support-bot");
    fx.p.inject_faults(
        "/api/sync/upload",
        vec![Fault::Stall(Duration::from_millis(3500))],
    );
    let (r, _) = timed(|| {
        fx.cmd(&["sync", "upload"])
            .env("FLUXLOOP_HTTP_TIMEOUT", "1")
            .run()
    });
    clean(&r);
    // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
    r.ok().stderr_has("timed out");
    // Let the stalled attempt finish on the platform, then count.
    // sleep: the check is that nothing more is stored once the stall ends;
    // an absence has no event to poll for, so this waits out the stall.
    std::thread::sleep(Duration::from_millis(3000));
    fx.assert_stored_once(10);
}

/// One proxy plan applied to the first `times` upload attempts.
/// The TCP proxy forwards the `Host` its client sent (the proxy's own
/// address), which the platform answers only as a public URL of its own.
fn front(fx: &Fx, proxy: &Proxy) {
    fx.p.add_public_url(&proxy.url()).expect("proxy URL");
}

fn upload_through_proxy(fx: &Fx, plan: Plan, times: usize) -> Run {
    let proxy = Proxy::start(&fx.p.url(), Some(UPLOAD), vec![plan; times]);
    front(fx, &proxy);
    let (r, _) = timed(|| fx.cmd_at(&proxy.url(), &["sync", "upload"]).run());
    clean(&r);
    assert_eq!(proxy.faulted(), times.min(4), "{plan:?}: {r:?}");
    r
}

#[test]
fn upload_survives_connection_faults_exactly_once() {
    // 1500 runs: two chunks, the first body large enough that a reset
    // after its first read really cuts the request in the middle.
    let plans = [
        Plan::Close,
        Plan::ResetMidRequest,
        Plan::ResetMidResponse(20),
        Plan::CloseMidResponse(300),
        Plan::Stall,
    ];
    for plan in plans {
        let fx = setup(1500);
        fx.results("big");
        let times = if plan == Plan::Stall { 1 } else { 3 };
        let r = upload_through_proxy(&fx, plan, times);
        // substring: the rest is the platform-generated batch id and the server URL
        r.ok().stdout_has("Uploaded 1500 runs");
        fx.assert_stored_once(1500);
    }
}

#[test]
fn upload_that_never_gets_through_exits_4_in_time_and_a_rerun_stores_once() {
    for plan in [Plan::Close, Plan::ResetMidResponse(20), Plan::Stall] {
        let fx = setup(0);
        fx.results("support-bot");
        let r = upload_through_proxy(&fx, plan, 4);
        r.code(4)
            // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
            .stderr_has("error: cannot reach")
            .stderr_has("after 4 attempts");
        // Whatever reached the platform (a reset after the answer) is there
        // at most once, and a rerun completes the batch without a copy.
        let before = fx.p.batch_ids().unwrap();
        assert!(before.len() <= 1, "{plan:?}: {before:?}");
        fx.cmd(&["sync", "upload"])
            .run()
            .ok()
            // substring: the rest is the platform-generated batch id and the server URL
            .stdout_has("Uploaded 10 runs");
        fx.assert_stored_once(10);
    }
}

#[test]
fn pull_survives_connection_faults() {
    for plan in [
        Plan::Close,
        Plan::ResetMidRequest,
        Plan::ResetMidResponse(20),
        Plan::CloseMidResponse(400),
        Plan::Stall,
    ] {
        let fx = setup(0);
        let proxy = Proxy::start(&fx.p.url(), Some(PULL), vec![plan; 2]);
        front(&fx, &proxy);
        let (r, _) = timed(|| fx.cmd_at(&proxy.url(), &["sync", "pull", "--yes"]).run());
        clean(&r);
        assert_eq!(
            r.ok().stdout,
            "Pulled 10 inputs, 3 personas, 4 criteria for support-bot (bundle v1)\n"
        );
        assert_eq!(proxy.faulted(), 2, "{plan:?}");
        let inputs = fx
            .sb
            .work()
            .join(".fluxloop/scenarios/support-bot/pulled/inputs.json");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(inputs).unwrap()).unwrap();
        let n = v
            .as_array()
            .or_else(|| v["inputs"].as_array())
            .map(Vec::len);
        assert_eq!(n, Some(10), "{plan:?}");
    }
}

#[test]
fn pull_that_never_gets_through_exits_4_in_time() {
    for plan in [Plan::Close, Plan::ResetMidRequest, Plan::Stall] {
        let fx = setup(0);
        // Every connection, including the key check before the pull.
        let proxy = Proxy::start(&fx.p.url(), None, vec![plan; 50]);
        front(&fx, &proxy);
        let (r, _) = timed(|| fx.cmd_at(&proxy.url(), &["sync", "pull", "--yes"]).run());
        clean(&r);
        r.code(4)
            // substring: the retry warnings name the server's random port, and how many there are depends on the fault and its timing
            .stderr_has("error: cannot reach")
            .stderr_has("after 4 attempts");
        assert!(!fx
            .sb
            .work()
            .join(".fluxloop/scenarios/support-bot/pulled")
            .exists());
    }
}

#[test]
fn dead_port_fails_fast_with_exit_4() {
    let fx = setup(0);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    fx.results("support-bot");
    for args in [&["sync", "upload"][..], &["sync", "pull", "--yes"][..]] {
        let (r, _) = timed(|| fx.cmd_at(&url, args).run());
        clean(&r);
        // substring: the message names a closed socket's random port, after retry warnings
        r.code(4).stderr_has("connection refused");
    }
}
