//! Ctrl-C and SIGTERM. Long waits of our own (the runner, the login poll)
//! check a flag and stop cleanly. A blocking HTTP request cannot check
//! anything, so during network phases a watchdog thread ends the process
//! itself: every file we write there (upload state, pulled/) is replaced
//! atomically, so stopping at any instant is as safe as a SIGKILL, and the
//! user gets the way to resume and exit 130 (SIGINT) or 143 (SIGTERM).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

static STOP: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signals a cancelled CI job or a user at a terminal sends.
pub(crate) const STOP_SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];
/// How often the watchdog looks at the flag: well inside the 2 s a CI
/// runner waits between SIGTERM and SIGKILL.
const WATCH_EVERY: Duration = Duration::from_millis(20);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Routes `signals` to the flag from now on.
pub(crate) fn catch(signals: &[libc::c_int]) {
    for &sig in signals {
        // SAFETY: the handler only stores to atomics, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// Whether a caught signal has arrived.
pub(crate) fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The exit code for the caught signal (128 + its number), if one arrived.
pub(crate) fn exit_code() -> Option<u8> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => u8::try_from(128 + sig).ok(),
    }
}

/// The signal's name for messages.
fn name(code: u8) -> &'static str {
    match i32::from(code) - 128 {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Signals caught for a command's lifetime; the default actions come back
/// when it ends, so nothing keeps catching signals nobody looks at.
pub(crate) struct Caught(());

impl Caught {
    pub(crate) fn new() -> Caught {
        catch(&STOP_SIGNALS);
        Caught(())
    }
}

impl Drop for Caught {
    fn drop(&mut self) {
        for sig in STOP_SIGNALS {
            // SAFETY: restoring the default disposition has no preconditions.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}

/// A network phase: while this lives, a caught signal (or one that came
/// just before) calls `on_stop(signal name)` and ends the process with 130
/// or 143 at once, without waiting for the request in flight.
pub(crate) struct StopAtOnce {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StopAtOnce {
    pub(crate) fn new(on_stop: impl FnOnce(&str) + Send + 'static) -> StopAtOnce {
        catch(&STOP_SIGNALS);
        let done = Arc::new(AtomicBool::new(false));
        let watching = Arc::clone(&done);
        let thread = std::thread::Builder::new()
            .name("signal-watchdog".into())
            .spawn(move || {
                while !watching.load(Ordering::SeqCst) {
                    if let Some(code) = exit_code() {
                        on_stop(name(code));
                        std::process::exit(i32::from(code));
                    }
                    std::thread::sleep(WATCH_EVERY);
                }
            })
            .ok();
        StopAtOnce { done, thread }
    }
}

impl Drop for StopAtOnce {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
