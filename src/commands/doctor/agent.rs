//! doctor's agent check: the runner's program resolves as `execvp` would
//! find it, before a test run fails on every input.

use std::path::{Path, PathBuf};

use super::Checks;
use crate::config::project::{CommandSpec, RunnerType};
use crate::ctx::Ctx;
use crate::error::code;

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
    match resolve_program(&program, &dir, ctx.env.get_os("PATH")) {
        Ok(path) => c.ok("agent", format!("{program} is {}", path.display())),
        Err(why) => c.fail(
            "agent",
            format!("{program}: {why}"),
            "install it, or fix runner.command in fluxloop.yaml",
            code::USAGE,
        ),
    }
}

/// A program as `execvp` finds it: a path (relative to `dir`) if it has a
/// `/`, else the first executable file of that name on `PATH`.
fn resolve_program(
    program: &str,
    dir: &Path,
    path: Option<&std::ffi::OsStr>,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.is_empty() {
        return Err("the command is empty".into());
    }
    if program.contains('/') {
        let p: PathBuf = dir
            .join(program)
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect();
        return match p.metadata() {
            Err(_) => Err(format!("{} does not exist", p.display())),
            Ok(_) if !executable(&p) => {
                Err(format!("{} is not executable (chmod +x)", p.display()))
            }
            Ok(_) => Ok(p),
        };
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|d| d.join(program))
        .find(|p| executable(p))
        .ok_or_else(|| "not found on PATH".to_string())
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
            resolve_program("agent", tmp.path(), Some(&path)).is_err(),
            "not executable"
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            resolve_program("agent", Path::new("/"), Some(&path)).unwrap(),
            bin
        );
        assert_eq!(resolve_program("./agent", tmp.path(), None).unwrap(), bin);
        assert!(resolve_program("./nope", tmp.path(), None)
            .unwrap_err()
            .contains("does not exist"));
    }
}
