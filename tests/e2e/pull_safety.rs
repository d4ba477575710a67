//! Issue 13, pull: `pulled/` changes as a whole. A kill at any instant of a
//! pull leaves the previous bundle or the new one, never a mix (which gave
//! a false conflict and a wrong bundle id), and the next pull removes what
//! killed pulls left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixtures::{setup, signal, Fx};

const FILES: [&str; 3] = ["inputs.json", "personas.json", "criteria.json"];

fn pull(fx: &Fx, bundle: &str) -> crate::util::Cmd {
    fx.cmd(&[
        "sync",
        "pull",
        "--scenario",
        "sweep",
        "--bundle-version-id",
        bundle,
        "--yes",
    ])
}

/// The bundle id recorded in `pulled/` and the bytes of its files.
fn state(pulled: &Path) -> (String, Vec<Vec<u8>>) {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pulled.join("sync_meta.json")).unwrap())
            .unwrap_or_else(|e| panic!("sync_meta.json is not JSON: {e}"));
    let id = meta["bundle_version"]["id"].as_str().unwrap().to_string();
    let files = FILES
        .iter()
        .map(|f| std::fs::read(pulled.join(f)).unwrap_or_default())
        .collect();
    (id, files)
}

#[test]
fn regression_13_kill_sweep_leaves_pulled_as_one_whole_bundle() {
    let fx = setup(0);
    let a =
        fx.p.seed_scenario(&fx.demo.project_id, "sweep", 150)
            .unwrap();
    let b =
        fx.p.seed_scenario(&fx.demo.project_id, "sweep", 151)
            .unwrap();
    let scenario_dir = fx.sb.work().join(".fluxloop/scenarios/sweep");
    let pulled = scenario_dir.join("pulled");
    // The whole bundles, as complete pulls write them, and how long one takes.
    let mut whole = BTreeMap::new();
    let mut full = Duration::ZERO;
    for bundle in [&a.bundle_version_id, &b.bundle_version_id] {
        let started = Instant::now();
        pull(&fx, bundle).run().ok();
        full = full.max(started.elapsed());
        let (id, files) = state(&pulled);
        assert_eq!(&id, bundle);
        whole.insert(id, files);
    }
    let kills = 200u32;
    let (mut new, mut previous) = (0u32, 0u32);
    let sweep = Instant::now();
    for i in 0..kills {
        let bundle = if i % 2 == 0 {
            &a.bundle_version_id
        } else {
            &b.bundle_version_id
        };
        // Swept from the start of the process to past the end of a pull.
        let delay = full.mul_f64(1.2 * f64::from(i) / f64::from(kills));
        let mut child = pull(&fx, bundle)
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // sleep: the swept moment to kill at is the test.
        std::thread::sleep(delay);
        signal(child.id(), libc::SIGKILL);
        child.wait().unwrap();
        let (id, files) = state(&pulled);
        if &id == bundle {
            new += 1;
        } else {
            previous += 1;
        }
        let want = whole
            .get(&id)
            .unwrap_or_else(|| panic!("kill {i}: unknown bundle {id}"));
        for (n, f) in FILES.iter().enumerate() {
            assert!(
                files[n] == want[n],
                "kill {i} after {delay:?}: {f} is not bundle {id}'s"
            );
        }
        let names: Vec<String> = std::fs::read_dir(&pulled)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !FILES.contains(&n.as_str()) && n != "sync_meta.json")
            .collect();
        assert!(
            names.is_empty(),
            "kill {i}: stray files in pulled/: {names:?}"
        );
    }
    // The figures docs/robustness.md records (`-- --nocapture`).
    eprintln!(
        "kill sweep: {kills} SIGKILLs at 0..{:?} (a whole pull: {full:?}) in {:?}: pulled/ held the new bundle {new} times, the previous one {previous} times, a mix never",
        full.mul_f64(1.2),
        sweep.elapsed()
    );
    // A pull after all that: no false conflict, and nothing left behind.
    pull(&fx, &a.bundle_version_id).run().ok();
    let leftovers = |dir: &Path, keep: &[&str]| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect()
    };
    let fluxloop = fx.sb.work().join(".fluxloop");
    assert_eq!(leftovers(&fluxloop, &["scenarios"]), Vec::<String>::new());
    assert_eq!(leftovers(&scenario_dir, &["pulled"]), Vec::<String>::new());
}
