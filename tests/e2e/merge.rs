//! Issue 17, offline fan-in: `report --merge DIR…` merges the result
//! directories of the shards (CI artifacts) into one, each run once.

use std::path::PathBuf;

use crate::fixtures::{jsonl, newest_result_dir, setup, Fx};
use crate::util::Cmd;

const AGENT: &str = "read -r line
if [ -n \"$BROKEN\" ]; then echo '{\"success\":false,\"output\":\"no\",\"error\":{\"message\":\"broken tool\"}}'; exit 0; fi
echo '{\"success\":true,\"output\":\"ok\"}'
";

fn test(fx: &Fx, spec: &str) -> Cmd {
    fx.cmd(&[
        "test",
        "--scenario",
        "big",
        "--skip-pull",
        "--skip-upload",
        "--shard",
        spec,
        "--",
        "sh",
        "agent.sh",
    ])
}

#[test]
fn issue_17_merge_makes_one_result_directory_of_the_shards() {
    let fx = setup(12);
    fx.sb.write("agent.sh", AGENT);
    fx.cmd(&["sync", "pull", "--scenario", "big", "--yes"])
        .run()
        .ok();
    // Three shard artifacts, moved aside as a CI would collect them.
    let mut dirs: Vec<PathBuf> = Vec::new();
    for i in 1..=3 {
        let mut cmd = test(&fx, &format!("{i}/3"));
        if i == 2 {
            cmd = cmd.env("BROKEN", "1");
        }
        let run = cmd.run();
        run.code(if i == 2 { 10 } else { 0 });
        let to = fx.sb.work().join(format!("artifacts/shard-{i}"));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::rename(newest_result_dir(&fx.sb), &to).unwrap();
        dirs.push(to);
    }
    let mut args: Vec<String> = vec!["report".into(), "--merge".into()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    // The first directory again: its runs are kept once.
    args.push(dirs[0].display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = fx.cmd(&args).run();
    run.code(10);
    let merged = newest_result_dir(&fx.sb);
    let name = merged.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        run.stdout,
        format!("FAILED big: 8 of 12 runs passed, merged from 4 result directories\n4 runs found in more than one directory, kept once\n\nResults: .fluxloop/results/{name}\n")
    );
    let trace = jsonl(&merged.join("trace_summary.jsonl"));
    let mut ids: Vec<&str> = trace
        .iter()
        .map(|r| r["input_item_id"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((trace.len(), ids.len()), (12, 12));
    let junit = std::fs::read_to_string(merged.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase").count(), 12);
    assert_eq!(junit.matches("<failure").count(), 4);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            summary["total_runs"].as_u64(),
            summary["failure_count"].as_u64(),
            summary["complete"].as_bool()
        ),
        (Some(12), Some(4), Some(true))
    );
    let errors: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(merged.join("errors.json")).unwrap())
            .unwrap();
    assert_eq!(
        errors.to_string().matches("broken tool").count(),
        4,
        "{errors}"
    );

    // A directory of another scenario does not merge.
    fx.cmd(&["sync", "pull", "--scenario", "support-bot", "--yes"])
        .run()
        .ok();
    fx.cmd(&[
        "test",
        "--scenario",
        "support-bot",
        "--skip-pull",
        "--skip-upload",
        "--",
        "sh",
        "agent.sh",
    ])
    .run()
    .ok();
    let other = newest_result_dir(&fx.sb);
    let run = fx
        .cmd(&[
            "report",
            "--merge",
            &dirs[0].display().to_string(),
            &other.display().to_string(),
        ])
        .run();
    run.code(2);
    let bundle = |d: &PathBuf| {
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("summary.json")).unwrap())
                .unwrap();
        s["bundle_version_id"].as_str().unwrap().to_string()
    };
    assert_eq!(
        run.stderr,
        format!(
            "error: {} is scenario big of bundle version {}, but {} is support-bot of {}: only shards of one job merge\n  hint: give the result directories of the shards of one `test --shard` job\n",
            dirs[0].display(),
            bundle(&dirs[0]),
            other.display(),
            bundle(&other)
        )
    );
}
