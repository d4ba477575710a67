//! A tiny TCP fault proxy for the e2e tests: a listener on 127.0.0.1:0 that
//! forwards to the platform, with a scripted plan per accepted connection.
//!
//! Connection-level failures (a reset in the middle of a request or of a
//! response, a connection that is accepted and then never answered, a
//! connection closed at once) cannot be made by the platform itself, which
//! always answers through `tiny_http`. Every connection takes the next
//! [`Plan`] from the queue; once the queue is empty connections are forwarded
//! untouched. Every thread is bounded: stalls end after [`STALL_MAX`] or
//! when the proxy is dropped.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a stalled connection is held open.
const STALL_MAX: Duration = Duration::from_secs(30);

/// What to do with one accepted connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Plan {
    /// Forward both ways, untouched.
    Forward,
    /// Close at once, before reading anything (a dropped attempt).
    Close,
    /// Read the first part of the request (its headers and, for a large
    /// body, part of the body), then reset (RST); nothing reaches the platform.
    ResetMidRequest,
    /// Forward the request; pass this many bytes of the response, then reset
    /// the client's connection. The platform has processed the request.
    ResetMidResponse(usize),
    /// As [`Plan::ResetMidResponse`] but with an orderly close (FIN): the
    /// client sees a truncated response.
    CloseMidResponse(usize),
    /// Accept, read whatever comes, never answer.
    Stall,
}

/// A running proxy; dropping it stops it.
#[allow(dead_code)]
pub struct Proxy {
    addr: SocketAddr,
    plans: Arc<Mutex<VecDeque<Plan>>>,
    accepted: Arc<AtomicUsize>,
    faulted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: SocketAddr,
    trigger: Option<String>,
    plans: Arc<Mutex<VecDeque<Plan>>>,
    faulted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`). A
    /// connection takes its plan when it carries a request whose bytes
    /// contain `trigger` (e.g. `"POST /api/sync/upload"`), or at its first
    /// request without a trigger; before that it is forwarded.
    pub fn start(upstream: &str, trigger: Option<&str>, plans: Vec<Plan>) -> Proxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let plans = Arc::new(Mutex::new(VecDeque::from(plans)));
        let accepted = Arc::new(AtomicUsize::new(0));
        let faulted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            upstream,
            trigger: trigger.map(str::to_owned),
            plans: Arc::clone(&plans),
            faulted: Arc::clone(&faulted),
            stop: Arc::clone(&stop),
        });
        let a = Arc::clone(&accepted);
        let thread = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        a.fetch_add(1, Ordering::SeqCst);
                        let shared = Arc::clone(&shared);
                        std::thread::spawn(move || handle(client, &shared));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy {
            addr,
            plans,
            accepted,
            faulted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    #[allow(dead_code)]
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Plans other than `Forward` carried out so far.
    pub fn faulted(&self) -> usize {
        self.faulted.load(Ordering::SeqCst)
    }

    /// Plans not used yet.
    #[allow(dead_code)]
    pub fn plans_left(&self) -> usize {
        self.plans.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SO_LINGER {on, 0}: closing sends RST instead of FIN.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = stream.shutdown(Shutdown::Both);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// One connection: the client→server direction runs on this thread and
/// decides the plan; server→client runs on a second thread and applies the
/// response cuts.
fn handle(client: TcpStream, shared: &Shared) {
    let Ok(server) = TcpStream::connect(shared.upstream) else {
        reset(&client);
        return;
    };
    let decided: Arc<Mutex<Option<Plan>>> = Arc::new(Mutex::new(None));
    let back = {
        let (mut client, mut server, decided) = (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            Arc::clone(&decided),
        );
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            let mut passed = 0usize;
            loop {
                let n = match server.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let plan = *decided.lock().unwrap();
                let (limit, rst) = match plan {
                    Some(Plan::ResetMidResponse(l)) => (Some(l), true),
                    Some(Plan::CloseMidResponse(l)) => (Some(l), false),
                    _ => (None, false),
                };
                let take = limit.map_or(n, |l| n.min(l.saturating_sub(passed)));
                if client.write_all(&buf[..take]).is_err() {
                    break;
                }
                if let Some(l) = limit {
                    passed += take;
                    if passed >= l {
                        let _ = client.flush();
                        let _ = server.shutdown(Shutdown::Both);
                        if rst {
                            reset(&client);
                        } else {
                            let _ = client.shutdown(Shutdown::Both);
                        }
                        return;
                    }
                }
            }
            // A stalled connection stays open until the client gives up.
            if *decided.lock().unwrap() != Some(Plan::Stall) {
                let _ = client.shutdown(Shutdown::Write);
            }
        })
    };
    let (mut client, mut server) = (client, server);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut plan = *decided.lock().unwrap();
        if plan.is_none() {
            let hit = shared
                .trigger
                .as_deref()
                .is_none_or(|t| contains(&buf[..n], t.as_bytes()));
            if hit {
                let p = shared
                    .plans
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or(Plan::Forward);
                if p != Plan::Forward {
                    shared.faulted.fetch_add(1, Ordering::SeqCst);
                }
                *decided.lock().unwrap() = Some(p);
                plan = Some(p);
            }
        }
        match plan {
            Some(Plan::Close) => {
                let _ = server.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
                break;
            }
            Some(Plan::ResetMidRequest) => {
                // The first part of the request is read (and dropped), then RST.
                let _ = server.shutdown(Shutdown::Both);
                reset(&client);
                break;
            }
            Some(Plan::Stall) => {
                let _ = server.shutdown(Shutdown::Both);
                client
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .ok();
                let until = Instant::now() + STALL_MAX;
                while Instant::now() < until && !shared.stop.load(Ordering::SeqCst) {
                    match client.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                break;
            }
            _ => {
                if server.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}
