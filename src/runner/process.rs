//! One run of the `process` runner (CLI.md §5): spawn the agent in its own
//! process group, write the request line to stdin and close it, read stdout
//! and stderr keeping only their tails (so huge or endless output cannot
//! exhaust memory), and kill the whole group on timeout — and after the
//! agent exits, so no stray grandchild outlives its run.
//!
//! The worker thread that spawned the agent does all the waiting itself:
//! one `poll` over both pipes and (on Linux) a pidfd that becomes readable
//! the moment the agent exits. No extra threads, no polling ticks: the
//! runner's cost per run stays close to the cost of spawning the agent.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::reaper::Reaper;
use super::{result_line, stopping, Agent, Outcome, Reply};

/// Kept from stdout to find the result line in.
const STDOUT_KEEP: usize = 1024 * 1024;
/// Kept from stderr for the failure reason.
const STDERR_KEEP: usize = 4 * 1024;
/// How long to wait for output pipes after the group is gone; a grandchild
/// that left the group (setsid) may hold them open forever.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Bytes an empty pipe always accepts at once (POSIX `PIPE_BUF`).
const PIPE_BUF: usize = if cfg!(target_os = "linux") { 4096 } else { 512 };

/// The raw result of one run.
pub(crate) struct Done {
    pub(crate) elapsed: Duration,
    pub(crate) outcome: Outcome,
    pub(crate) reply: Option<Reply>,
    pub(crate) stdout_tail: String,
    pub(crate) stderr_tail: String,
    /// Killed because the whole run is stopping (Ctrl-C, SIGTERM): not a
    /// result of the agent, so not recorded.
    pub(crate) cancelled: bool,
}

/// The last `cap` bytes of a stream.
struct Tail {
    buf: Vec<u8>,
    cap: usize,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Trim in batches so the cost stays linear.
        if self.buf.len() > self.cap * 2 {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    fn take(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.len() > self.cap {
            buf.drain(..buf.len() - self.cap);
        }
        buf
    }
}

/// One output pipe of the agent, read without blocking until it ends.
struct Pipe {
    file: Option<File>,
    tail: Tail,
}

impl Pipe {
    fn new(fd: Option<OwnedFd>, cap: usize) -> Pipe {
        let file = fd.map(|fd| {
            // SAFETY: fcntl on an fd we own; O_NONBLOCK only changes how
            // reads behave when the pipe is empty.
            unsafe {
                let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
                libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
            File::from(fd)
        });
        Pipe {
            file,
            tail: Tail {
                buf: Vec::new(),
                cap,
            },
        }
    }

    /// Reads what is there now; closes the pipe at its end.
    fn drain(&mut self, buf: &mut [u8]) {
        while let Some(f) = self.file.as_mut() {
            match f.read(buf) {
                Ok(0) => self.file = None,
                Ok(n) => self.tail.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.file = None,
            }
        }
    }
}

/// Waits up to `timeout` for output on the open pipes or for `extra` (the
/// pidfd) to become readable, then reads whatever output is there.
fn pump(pipes: &mut [Pipe; 2], extra: Option<libc::c_int>, timeout: Duration, buf: &mut [u8]) {
    let mut fds: Vec<libc::pollfd> = pipes
        .iter()
        .filter_map(|p| p.file.as_ref())
        .map(|f| f.as_raw_fd())
        .chain(extra)
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().clamp(1, 50) as libc::c_int;
    // SAFETY: a valid array of pollfds; EINTR just ends this wait early.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
    }
    for p in pipes.iter_mut() {
        p.drain(buf);
    }
}

/// A pidfd for the child (Linux 5.3+): readable the moment it exits, so the
/// wait below wakes at once instead of on a polling tick.
#[cfg(target_os = "linux")]
struct PidFd(libc::c_int);

#[cfg(target_os = "linux")]
impl PidFd {
    fn open(pid: u32) -> Option<PidFd> {
        // SAFETY: plain syscall with integer arguments; the fd is owned below.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        (fd >= 0).then_some(PidFd(fd as libc::c_int))
    }
}

#[cfg(target_os = "linux")]
impl Drop for PidFd {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe {
            libc::close(self.0);
        }
    }
}

fn kill_group(pid: u32) {
    // SAFETY: plain syscall; a negative pid addresses the process group the
    // child leads (process_group(0) made its pgid equal to its pid).
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
}

/// Whether the agent has ended. On Linux it is not reaped yet (`WNOWAIT`):
/// its pid, which is also its process group's id, stays taken until
/// `child.wait()`, so neither the group kill nor the reaper's unregister
/// after it can reach a recycled id.
#[cfg(target_os = "linux")]
fn ended(child: &mut Child) -> std::io::Result<bool> {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child with a valid siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r == 0 {
            // SAFETY: waitid filled in a SIGCHLD siginfo (or left it zeroed:
            // si_pid 0 means not ended yet).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn ended(child: &mut Child) -> std::io::Result<bool> {
    child.try_wait().map(|s| s.is_some())
}

fn spawn_error(program: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("`{program}` not found (is it installed and on PATH?)")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("`{program}` is not executable (permission denied)")
        }
        _ => format!("`{program}`: {e}"),
    }
}

/// The agent's command: its own environment without our credentials, its
/// own process group, and pipes for all three streams.
fn command(agent: &Agent) -> Command {
    let mut cmd = Command::new(&agent.program);
    for name in crate::config::env::CREDENTIAL_VARS {
        cmd.env_remove(name);
    }
    cmd.args(&agent.args)
        .current_dir(&agent.cwd)
        .envs(&agent.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    cmd
}

/// An empty pipe takes PIPE_BUF bytes without blocking, so a small request
/// is written here; a larger one goes in on its own thread: an agent that
/// never reads stdin must not block us when the request is larger than
/// the pipe buffer. Dropping stdin sends EOF.
fn feed(child: &mut Child, request: &[u8]) {
    if let Some(mut stdin) = child.stdin.take() {
        if request.len() <= PIPE_BUF {
            let _ = stdin.write_all(request);
        } else {
            let request = request.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&request);
            });
        }
    }
}

/// How the wait for the agent ended, when it was not by itself.
#[derive(Default)]
struct Waited {
    timed_out: bool,
    cancelled: bool,
}

/// Reads the agent's output until it exits, `deadline` passes or a stop
/// is asked for.
fn wait(child: &mut Child, pipes: &mut [Pipe; 2], deadline: Instant, buf: &mut [u8]) -> Waited {
    #[cfg(target_os = "linux")]
    let pidfd = PidFd::open(child.id());
    #[cfg(target_os = "linux")]
    let exit_fd = pidfd.as_ref().map(|p| p.0);
    #[cfg(not(target_os = "linux"))]
    let exit_fd: Option<libc::c_int> = None;
    let mut pause = Duration::from_millis(1);
    let mut waited = Waited::default();
    loop {
        match ended(child) {
            Ok(true) | Err(_) => break,
            Ok(false) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            waited.timed_out = true;
            break;
        }
        if stopping() {
            waited.cancelled = true;
            break;
        }
        // Output wakes the wait (and is read at once, so a chatty agent
        // never blocks on a full pipe); with a pidfd so does the exit.
        // Short slices keep Ctrl-C/SIGTERM noticed promptly.
        let slice = if exit_fd.is_some() {
            deadline - now
        } else {
            let p = pause;
            pause = (pause * 2).min(Duration::from_millis(20));
            p.min(deadline - now)
        };
        pump(pipes, exit_fd, slice, buf);
    }
    waited
}

/// What is left in the pipes, for a short grace period after the exit.
fn drain(pipes: &mut [Pipe; 2], buf: &mut [u8]) {
    let drain_deadline = Instant::now() + DRAIN_GRACE;
    loop {
        let now = Instant::now();
        if pipes.iter().all(|p| p.file.is_none()) || now >= drain_deadline {
            break;
        }
        pump(pipes, None, drain_deadline - now, buf);
    }
}

/// The outcome of an agent that was waited for.
fn outcome(agent: &Agent, timed_out: bool, status: Option<std::process::ExitStatus>) -> Outcome {
    if timed_out {
        return Outcome::TimedOut(agent.timeout);
    }
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => Outcome::Exited(code),
            (None, Some(sig)) => Outcome::Signalled(sig),
            (None, None) => Outcome::Exited(-1),
        },
        None => Outcome::Signalled(libc::SIGKILL),
    }
}

/// Runs the agent once with `request` on stdin; `reaper` (if any) kills its
/// group should `fluxloop` die meanwhile.
pub(crate) fn run_one(agent: &Agent, request: &[u8], reaper: Option<&Reaper>) -> Done {
    let start = Instant::now();
    // Nothing that needs code between fork and exec (pre_exec, uid, gid):
    // std then spawns with posix_spawn (a vfork), much cheaper than a fork.
    let mut child = match command(agent).spawn() {
        Ok(c) => c,
        Err(e) => {
            return Done {
                elapsed: start.elapsed(),
                outcome: Outcome::SpawnFailed(spawn_error(&agent.program, &e)),
                reply: None,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
                cancelled: false,
            }
        }
    };
    let pid = child.id();
    if let Some(r) = reaper {
        r.register(pid);
    }
    feed(&mut child, request);
    let mut pipes = [
        Pipe::new(child.stdout.take().map(OwnedFd::from), STDOUT_KEEP),
        Pipe::new(child.stderr.take().map(OwnedFd::from), STDERR_KEEP),
    ];
    let mut buf = vec![0u8; 16 * 1024];
    let waited = wait(&mut child, &mut pipes, start + agent.timeout, &mut buf);
    // The whole group goes: on timeout the agent and its children, after a
    // normal exit any background process it left behind.
    kill_group(pid);
    if let Some(r) = reaper {
        r.unregister(pid);
    }
    let status = child.wait().ok();
    let elapsed = start.elapsed();
    drain(&mut pipes, &mut buf);
    let [mut out, mut err] = pipes;
    let stdout = out.tail.take();
    let stderr = err.tail.take();
    let reply = result_line(&stdout);
    // Only the end of stdout is worth keeping for a reason.
    let stdout_tail = if reply.is_some() {
        String::new()
    } else {
        let from = stdout.len().saturating_sub(STDERR_KEEP);
        String::from_utf8_lossy(&stdout[from..]).into_owned()
    };
    Done {
        elapsed,
        outcome: outcome(agent, waited.timed_out, status),
        reply,
        stdout_tail,
        stderr_tail: String::from_utf8_lossy(&stderr).into_owned(),
        cancelled: waited.cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sh(script: &str, timeout_ms: u64) -> Agent {
        Agent {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn echoes_a_result_with_env_and_stdin() {
        let d = run_one(
            &sh(
                r#"read line; printf '{"success":true,"output":"%s %s"}\n' "$GREETING" "${#line}""#,
                5000,
            ),
            b"{\"x\":1}\n",
            None,
        );
        assert_eq!(d.outcome, Outcome::Exited(0));
        assert_eq!(d.reply.unwrap().output, "hello 7");
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let start = Instant::now();
        let d = run_one(&sh(&script, 300), b"", None);
        assert_eq!(d.outcome, Outcome::TimedOut(Duration::from_millis(300)));
        assert!(start.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // A killed orphan may linger as a zombie until init reaps it.
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "grandchild {pid} survived");
    }

    #[test]
    fn huge_output_is_capped_and_the_last_line_found() {
        let d = run_one(
            &sh(
                r#"head -c 5000000 /dev/zero | tr '\0' 'x'; echo; echo '{"success":true,"output":"end"}'"#,
                10_000,
            ),
            b"",
            None,
        );
        assert_eq!(d.reply.unwrap().output, "end");
    }

    #[test]
    fn missing_program() {
        let mut a = sh("", 1000);
        a.program = "definitely-not-a-program-xyz".into();
        let d = run_one(&a, b"", None);
        assert!(
            matches!(d.outcome, Outcome::SpawnFailed(ref m) if m.contains("not found")),
            "{:?}",
            d.outcome
        );
    }
}
