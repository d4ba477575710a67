//! The `function` runner (CLI.md §5): `python3` with a small bootstrap that
//! imports `module:function` from the working directory, calls it with the
//! input text, and prints the result in the process protocol. Each run is
//! still one process, so timeouts and isolation work as for `process`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::Agent;

/// Reads the request line, calls the target, prints one result line.
/// A returned dict with `output` or `success` is passed through; anything
/// else becomes `output` (as FluxLoop CLI 0.4 does, via `str()`).
const BOOTSTRAP: &str = r#"
import asyncio, importlib, inspect, json, os, sys, traceback
def main():
    target = sys.argv[1]
    module_name, _, func_name = target.partition(":")
    if not module_name or not func_name:
        print(json.dumps({"success": False, "error": {"message": "runner.target must be 'module:function', not %r" % target}}))
        return
    request = json.loads(sys.stdin.readline() or "{}")
    sys.path.insert(0, os.getcwd())
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        result = func(request.get("input_text", ""))
        if inspect.isawaitable(result):
            result = asyncio.run(result) if inspect.iscoroutine(result) else asyncio.get_event_loop().run_until_complete(result)
    except BaseException as e:
        sys.stdout.flush()
        print("\n" + json.dumps({"success": False, "error": {"message": "%s: %s" % (type(e).__name__, e), "traceback": traceback.format_exc()}}))
        return
    if isinstance(result, dict) and ("output" in result or "success" in result):
        reply = dict(result)
        reply.setdefault("success", True)
        if not isinstance(reply.get("output", ""), str):
            reply["output"] = json.dumps(reply["output"], ensure_ascii=False, default=str)
    else:
        reply = {"success": True, "output": result if isinstance(result, str) else str(result)}
        if isinstance(result, dict) and isinstance(result.get("token_usage") or result.get("usage"), dict):
            reply["token_usage"] = result.get("token_usage") or result.get("usage")
    sys.stdout.flush()
    print("\n" + json.dumps(reply, ensure_ascii=False, default=str))
main()
"#;

/// The agent command for `target` run by `python`.
pub(crate) fn agent(
    python: &str,
    target: &str,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    timeout: Duration,
) -> Agent {
    let mut env = env;
    // Results must not sit in a buffer when the run is killed.
    env.entry("PYTHONUNBUFFERED".into())
        .or_insert_with(|| "1".into());
    Agent {
        program: python.to_string(),
        args: vec!["-c".into(), BOOTSTRAP.into(), target.to_string()],
        cwd,
        env,
        timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{process, Outcome};

    fn have_python() -> bool {
        std::process::Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn calls_the_function() {
        if !have_python() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("myagent.py"),
            "def run(text):\n    print('noise')\n    return 'echo: ' + text\n\ndef bad(text):\n    raise ValueError('nope')\n",
        )
        .unwrap();
        let req = br#"{"run_id":"r","input_text":"hi","context":{}}
"#;
        let a = agent(
            "python3",
            "myagent:run",
            dir.path().into(),
            BTreeMap::new(),
            Duration::from_secs(20),
        );
        let d = process::run_one(&a, req, None);
        assert_eq!(d.outcome, Outcome::Exited(0));
        assert_eq!(d.reply.unwrap().output, "echo: hi");
        let a = agent(
            "python3",
            "myagent:bad",
            dir.path().into(),
            BTreeMap::new(),
            Duration::from_secs(20),
        );
        let d = process::run_one(&a, req, None);
        let r = d.reply.unwrap();
        assert!(!r.success);
        assert_eq!(r.error.as_deref(), Some("ValueError: nope"));
    }
}
