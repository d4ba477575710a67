//! The platform under load: N concurrent `fluxloop sync upload` processes
//! against one platform on loopback, bounded in count and time. Every run is
//! stored exactly once, no upload fails, and the throughput is printed
//! (`cargo test --test e2e load -- --nocapture`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixtures::setup;

const UPLOADERS: usize = 8;
const RUNS: usize = 500;
const LIMIT: Duration = Duration::from_secs(60);

/// Copies a result directory with fresh run ids (each copy is another CI job).
fn copy_results(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name == "trace_summary.jsonl" {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let mut out = String::new();
            for l in text.lines() {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["run_id"] = uuid::Uuid::new_v4().to_string().into();
                out.push_str(&v.to_string());
                out.push('\n');
            }
            std::fs::write(to.join(name), out).unwrap();
        } else if e.path().is_file() && name != "upload_state.json" {
            std::fs::copy(e.path(), to.join(name)).unwrap();
        }
    }
}

#[test]
fn concurrent_uploads_store_every_run_once_and_report_throughput() {
    let fx = setup(RUNS);
    let first = fx.results("big");
    let dirs: Vec<_> = (0..UPLOADERS)
        .map(|i| {
            let d = fx.sb.dir.path().join(format!("job-{i}"));
            copy_results(&first, &d);
            d
        })
        .collect();
    let started = Instant::now();
    let mut children: Vec<_> = dirs
        .iter()
        .map(|d| {
            fx.cmd(&["sync", "upload", "--result-dir", d.to_str().unwrap()])
                .env("FLUXLOOP_HTTP_TIMEOUT", "30")
                .command()
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut pending: Vec<usize> = (0..UPLOADERS).collect();
    while !pending.is_empty() {
        if started.elapsed() > LIMIT {
            for c in &mut children {
                let _ = c.kill();
            }
            panic!("uploads still running after {LIMIT:?}");
        }
        pending.retain(|&i| children[i].try_wait().unwrap().is_none());
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = started.elapsed();
    for c in children {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "upload failed: {stderr}");
        assert!(
            // substring: an absence, which must hold anywhere in the text
            !stderr.contains("retrying"),
            "an upload needed a retry under load: {stderr}"
        );
    }
    let batches = fx.p.batch_ids().unwrap();
    assert_eq!(batches.len(), UPLOADERS);
    for b in &batches {
        assert_eq!(fx.p.run_count(b).unwrap(), RUNS, "batch {b}");
    }
    let total = UPLOADERS * RUNS;
    let rate = total as f64 / took.as_secs_f64();
    eprintln!(
        "load: {UPLOADERS} concurrent uploads x {RUNS} runs = {total} runs stored once in {:.2} s: {rate:.0} runs/s",
        took.as_secs_f64()
    );
}
