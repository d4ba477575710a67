//! The workflow `fluxloop init` writes (issue 18), run by act as a GitHub
//! runner would: the only edits are the two `with:` inputs that keep the job
//! on this machine (the binary under test instead of a release download, and
//! the local platform's endpoint).

use crate::act::{self, Act};
use crate::util;

#[path = "../e2e/init_workflow.rs"]
#[allow(dead_code)]
mod init_workflow;

#[test]
#[ignore = "needs act"]
fn the_workflow_init_writes_runs_under_act() {
    let demo = util::demo_platform();
    let mut act = Act::new();
    let fluxloop = std::path::Path::new(env!("CARGO_BIN_EXE_fluxloop"));
    let workflow = init_workflow::init_github_repo(fluxloop, &act.repo(), &demo.scenario);
    // init found agent.py; give it one that answers (init left it as it was).
    std::fs::write(
        act.repo().join("agent.py"),
        "import json, sys\nsys.stdin.readline()\nprint(json.dumps({\"success\": True, \"output\": \"ok\"}))\n",
    )
    .expect("write agent.py");
    let mut text = std::fs::read_to_string(&workflow).expect("read the workflow init wrote");
    assert!(
        text.ends_with('\n') && text.contains(&act::action_ref()),
        "{text}"
    );
    text.push_str(&format!(
        "          binary: {}\n          endpoint: {}\n",
        fluxloop.display(),
        demo.url
    ));
    act::commit(&act);
    act.secret("FLUXLOOP_API_KEY", &demo.key);
    let run = act.run(&text);
    assert!(
        run.code == Some(0) && run.stdout.contains("🏁  Job succeeded"),
        "{}",
        run.all()
    );
    assert!(!run.stdout.contains(&demo.key) && !run.stderr.contains(&demo.key));
    let batches = demo.platform.batch_ids().expect("batch ids");
    assert_eq!(batches.len(), 1, "{}", run.all());
    assert_eq!(demo.platform.run_count(&batches[0]).expect("count"), 10);
}
