//! doctor's agent check: the runner's program resolves as `execvp` would
//! find it, before a test run fails on every input.

use std::path::{Path, PathBuf};

use super::Checks;
use crate::config::project::{CommandSpec, RunnerType};
use crate::ctx::Ctx;
use crate::error::code;
use crate::runner::{resolve_program, Unrunnable};

/// The runner's command resolves to an executable file.
pub(super) fn agent(ctx: &Ctx, c: &mut Checks, config_ok: bool) {
    let Some(loaded) = ctx.config().ok().flatten().filter(|_| config_ok) else {
        c.skip("agent", "not checked: no fluxloop.yaml");
        return;
    };
    let runner = &loaded.config.runner;
    let dir = loaded
        .dir()
        .join(runner.working_directory.as_deref().unwrap_or("."));
    let program = match (&runner.kind, &runner.command) {
        (Some(RunnerType::Function), _) => {
            runner.python.clone().unwrap_or_else(|| "python3".into())
        }
        (_, Some(CommandSpec::Argv(words))) => words.first().cloned().unwrap_or_default(),
        (_, Some(CommandSpec::Shell(_))) => "sh".into(),
        (_, None) => {
            c.fail(
                "agent",
                format!("no runner.command in {}", loaded.path.display()),
                "set runner.command (e.g. [\"python3\", \"agent.py\"]) or pass it after `fluxloop test --`",
                code::USAGE,
            );
            return;
        }
    };
    match resolve(&program, &dir, ctx.env.get_os("PATH")) {
        Ok(path) => c.ok("agent", format!("{program} is {}", path.display())),
        Err(why) => c.fail(
            "agent",
            format!("{program}: {why}"),
            "install it, or fix runner.command in fluxloop.yaml",
            code::USAGE,
        ),
    }
}

/// What doctor says of a program that cannot be started.
fn resolve(program: &str, dir: &Path, path: Option<&std::ffi::OsStr>) -> Result<PathBuf, String> {
    resolve_program(program, dir, path).map_err(|why| match why {
        Unrunnable::Empty => "the command is empty".to_string(),
        Unrunnable::Missing(p) => format!("{} does not exist", p.display()),
        Unrunnable::NotExecutable(p) => format!("{} is not executable (chmod +x)", p.display()),
        Unrunnable::NotOnPath => "not found on PATH".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_like_execvp() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("agent");
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([tmp.path()]).unwrap();
        assert!(
            resolve("agent", tmp.path(), Some(&path)).is_err(),
            "not executable"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve("agent", Path::new("/"), Some(&path)).unwrap(), bin);
        assert_eq!(resolve("./agent", tmp.path(), None).unwrap(), bin);
        assert!(resolve("./nope", tmp.path(), None)
            .unwrap_err()
            .contains("does not exist"));
    }
}
