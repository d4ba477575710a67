//! The reaper: a forked copy of `fluxloop` that kills every agent process
//! group still running when `fluxloop` goes away — SIGKILL included, which
//! `fluxloop` itself cannot catch.
//!
//! `fluxloop test` forks it once, before any other thread exists, and keeps
//! the write end of a pipe to it. Each run registers its agent's process
//! group after the spawn and unregisters it once the group is killed. When
//! every write end is closed (`fluxloop` ended, however it ended) the reaper
//! reads EOF, sends SIGKILL to each group still registered and exits. The
//! agents themselves are started with plain `posix_spawn` (no `pre_exec`
//! hook), and a whole group goes, so processes an agent started itself in
//! its group go with it.
//!
//! The forked child runs async-signal-safe code only: no allocation, no
//! locks, no std I/O, no panics; just system calls on fixed-size arrays on
//! its stack. It reads the pipe in batches with a 1 ms pause between them,
//! so it wakes up at most about a thousand times a second however fast the
//! runs go (two wake-ups per run cost a visible share of a CPU at
//! `--parallel 4`), and sees EOF at most that much later.

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;

/// Message tags: a group to kill on EOF, a group no longer to kill.
const REGISTER: i32 = 1;
const UNREGISTER: i32 = -1;
/// One message: `i32` tag then `i32` process group id, native endian. Far
/// below `PIPE_BUF`, so each write is atomic among the worker threads.
const MSG: usize = 8;
/// Bytes the reaper reads at once: 512 messages (4 KiB, on its stack).
const BATCH: usize = 512 * MSG;
/// Live groups the reaper tracks (`--parallel` is capped at 256).
const SLOTS: usize = 1024;
/// The reaper's name in `ps` and `/proc/<pid>/comm` (at most 15 bytes).
const NAME: &[u8] = b"fluxloop-reaper\0";

/// The `fluxloop` side of the reaper. Dropping it closes the pipe and waits
/// for the reaper, which exits within a millisecond or so.
pub(crate) struct Reaper {
    pid: libc::pid_t,
    tx: Option<File>,
}

impl Reaper {
    /// Forks the reaper. Call it while the process is single-threaded.
    pub(crate) fn start() -> std::io::Result<Reaper> {
        #[cfg(all(target_os = "linux", debug_assertions, not(test)))]
        debug_assert_eq!(
            threads(),
            Some(1),
            "the reaper must be forked before any other thread exists"
        );
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes. Both
        // are close-on-exec: no agent inherits the write end (one that did
        // would keep the reaper from ever seeing EOF).
        #[cfg(target_os = "linux")]
        let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        // SAFETY: as above; no other thread exists to spawn a process between
        // pipe and fcntl.
        #[cfg(not(target_os = "linux"))]
        let r = unsafe {
            let r = libc::pipe(fds.as_mut_ptr());
            if r == 0 {
                libc::fcntl(fds[0], libc::F_SETFD, libc::FD_CLOEXEC);
                libc::fcntl(fds[1], libc::F_SETFD, libc::FD_CLOEXEC);
            }
            r
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let [rx, tx] = fds;
        let fd_bound = fd_bound();
        // SAFETY: the child runs `reaper_main` only, which makes
        // async-signal-safe system calls and never returns (it `_exit`s), so
        // fork is sound even if another thread existed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the freshly forked child, as described above.
            unsafe { reaper_main(rx, fd_bound) }
        }
        let err = std::io::Error::last_os_error();
        // SAFETY: the read end is ours and only the reaper uses it.
        unsafe {
            libc::close(rx);
        }
        if pid < 0 {
            // SAFETY: the write end is ours and closed once.
            unsafe {
                libc::close(tx);
            }
            return Err(err);
        }
        Ok(Reaper {
            pid,
            // SAFETY: `tx` is an open descriptor owned by nothing else.
            tx: Some(unsafe { File::from_raw_fd(tx) }),
        })
    }

    /// The process group `pgid` is to be killed if `fluxloop` dies.
    pub(crate) fn register(&self, pgid: u32) {
        self.send(REGISTER, pgid);
    }

    /// The process group `pgid` is dead (or about to be reaped): forget it.
    pub(crate) fn unregister(&self, pgid: u32) {
        self.send(UNREGISTER, pgid);
    }

    fn send(&self, tag: i32, pgid: u32) {
        let mut msg = [0u8; MSG];
        msg[..4].copy_from_slice(&tag.to_ne_bytes());
        msg[4..].copy_from_slice(&(pgid as i32).to_ne_bytes());
        if let Some(mut tx) = self.tx.as_ref() {
            // A reaper that is gone (killed by someone) gives EPIPE, not
            // SIGPIPE (Rust ignores it): the run goes on unprotected.
            let _ = tx.write_all(&msg);
        }
    }

    /// The reaper's pid (tests).
    #[cfg(test)]
    fn pid(&self) -> libc::pid_t {
        self.pid
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // EOF: the reaper kills whatever is still registered and exits.
        drop(self.tx.take());
        loop {
            // SAFETY: waits for our own child; a null status pointer is allowed.
            let r = unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) };
            if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
}

/// The number of threads of this process, from `/proc/self/status`.
#[cfg(all(target_os = "linux", any(debug_assertions, test)))]
pub(crate) fn threads() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Descriptors to close in the child when `close_range` is not available;
/// computed before the fork (sysconf is not async-signal-safe).
fn fd_bound() -> libc::c_int {
    // SAFETY: plain libc query.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    max.clamp(256, 65_536) as libc::c_int
}

/// Closes every descriptor but `keep`.
///
/// # Safety
///
/// Only for the forked child: it closes descriptors other code may own.
unsafe fn close_all_but(keep: libc::c_int, bound: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        let keep = keep as libc::c_uint;
        let low = if keep == 0 {
            0
        } else {
            libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, keep - 1, 0)
        };
        let high = libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0);
        if low == 0 && high == 0 {
            return;
        }
    }
    // No close_range (Linux before 5.9, other systems): one by one.
    let mut fd = 0;
    while fd < bound {
        if fd != keep {
            libc::close(fd);
        }
        fd += 1;
    }
}

/// Reads what the pipe holds into `buf[have..]` (blocking while it is
/// empty); the new fill level, or `None` at EOF (every write end closed) or
/// on an error. (`last_os_error` only reads errno: no allocation.)
///
/// # Safety
///
/// `rx` is a readable descriptor.
unsafe fn read_more(rx: libc::c_int, buf: &mut [u8; BATCH], have: usize) -> Option<usize> {
    loop {
        let room = BATCH.checked_sub(have).filter(|r| *r > 0)?;
        let n = libc::read(rx, buf.as_mut_ptr().add(have).cast(), room);
        if n > 0 {
            return Some(have + n as usize);
        }
        if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// Applies one message to the table of live groups.
fn apply(groups: &mut [libc::pid_t; SLOTS], msg: &[u8]) {
    let &[t0, t1, t2, t3, p0, p1, p2, p3] = msg else {
        return;
    };
    let tag = i32::from_ne_bytes([t0, t1, t2, t3]);
    let pgid = i32::from_ne_bytes([p0, p1, p2, p3]);
    // kill(-1) would signal every process we may signal; kill(0) our own
    // group. Neither is an agent's group.
    if pgid <= 1 {
        return;
    }
    let (from, to) = match tag {
        REGISTER => (0, pgid),
        UNREGISTER => (pgid, 0),
        _ => return,
    };
    // A full table drops the group: it is then unprotected, nothing worse.
    if let Some(slot) = groups.iter_mut().find(|g| **g == from) {
        *slot = to;
    }
}

/// The reaper process.
///
/// # Safety
///
/// Only in the child right after `fork`: it closes every descriptor but
/// `rx` and never returns.
unsafe fn reaper_main(rx: libc::c_int, fd_bound: libc::c_int) -> ! {
    // Terminal and CI signals are for `fluxloop`, which kills the groups
    // itself then; the reaper waits for EOF. Its own process group keeps a
    // Ctrl-C to the job's foreground group from reaching it at all.
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        libc::signal(sig, libc::SIG_IGN);
    }
    libc::setpgid(0, 0);
    #[cfg(target_os = "linux")]
    libc::prctl(libc::PR_SET_NAME, NAME.as_ptr() as libc::c_ulong, 0, 0, 0);
    #[cfg(not(target_os = "linux"))]
    let _ = NAME;
    // Most of all the pipe's write end: EOF must come when `fluxloop` ends.
    // Also its stdout and stderr, which whoever started it may read to EOF.
    close_all_but(rx, fd_bound);

    let mut groups = [0 as libc::pid_t; SLOTS];
    let mut buf = [0u8; BATCH];
    let mut have = 0;
    while let Some(filled) = read_more(rx, &mut buf, have) {
        let whole = filled - filled % MSG;
        for msg in buf.get(..whole).unwrap_or(&[]).chunks_exact(MSG) {
            apply(&mut groups, msg);
        }
        // A partial message (never written so, but cheap to allow) waits for
        // its rest at the front.
        buf.copy_within(whole..filled, 0);
        have = filled - whole;
        // Let messages gather: one wake-up per batch instead of two per run
        // (a core the agents could use). A group registered meanwhile is in
        // the pipe, so EOF still finds it; EOF is seen at most this late.
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        libc::nanosleep(&pause, std::ptr::null_mut());
    }
    for &pgid in groups.iter() {
        if pgid > 1 {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Whether `pid` is a live (non-zombie) process.
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            let state = s.rsplit(") ").next().unwrap_or("");
            !state.starts_with('Z') && !state.starts_with('X')
        })
    }

    fn gone_within(pid: i32, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while alive(pid) {
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// An agent in its own group with a background child; returns the
    /// agent (to reap) and the child's pid.
    fn group_with_child() -> (std::process::Child, i32) {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 300 & echo $!; exec sleep 300"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        (child, line.trim().parse().unwrap())
    }

    #[test]
    fn threads_are_counted() {
        assert!(threads().is_some_and(|n| n >= 1));
    }

    #[test]
    fn eof_kills_registered_groups_children_included() {
        let reaper = Reaper::start().unwrap();
        let reaper_pid = reaper.pid();
        let (mut agent, grandchild) = group_with_child();
        reaper.register(agent.id());
        // Written before the drop: the message is in the pipe before EOF.
        drop(reaper);
        assert!(!alive(reaper_pid), "the reaper outlived its pipe");
        let status = agent.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert!(gone_within(grandchild, Duration::from_secs(5)));
    }

    #[test]
    fn unregistered_groups_are_left_alone() {
        let reaper = Reaper::start().unwrap();
        let (mut agent, grandchild) = group_with_child();
        reaper.register(agent.id());
        reaper.unregister(agent.id());
        // Bogus ids are ignored, never sent as kill(-1) or kill(0).
        reaper.register(1);
        reaper.register(0);
        drop(reaper);
        std::thread::sleep(Duration::from_millis(50));
        assert!(alive(agent.id() as i32) && alive(grandchild));
        // SAFETY: the group we started above.
        unsafe {
            libc::kill(-(agent.id() as i32), libc::SIGKILL);
        }
        agent.wait().unwrap();
    }

    #[test]
    fn the_reaper_leads_its_own_group_and_keeps_only_its_pipe() {
        let reaper = Reaper::start().unwrap();
        let pid = reaper.pid();
        // The name is set right after the fork; wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap() != "fluxloop-reaper\n" {
            assert!(Instant::now() < deadline, "the reaper never named itself");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Descriptors are closed after the name is set: wait for one left.
        let fds = || {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .count()
        };
        while fds() != 1 {
            assert!(Instant::now() < deadline, "the reaper keeps {} fds", fds());
            std::thread::sleep(Duration::from_millis(5));
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        assert_eq!(fields[2], pid.to_string(), "pgrp: {stat}");
        drop(reaper);
        assert!(!alive(pid));
    }
}
