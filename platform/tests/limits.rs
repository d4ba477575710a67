//! Issue 15, item 2: each limit under attack, bounded in count and time, on
//! 127.0.0.1. Throughout every attack `/api/health` must answer within 1 s
//! (the bound; the limits are set small here so each attack ends in
//! seconds). Peak memory of the whole test process is printed, not asserted:
//! it is measured in bench/.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use fluxloop_platform::{Config, Limits, Platform};

/// The bound for `/api/health` during an attack.
const HEALTHY: Duration = Duration::from_secs(1);

fn platform(limits: Limits) -> Platform {
    Platform::start(Config {
        limits,
        ..Config::default()
    })
    .expect("start platform")
}

fn small() -> Limits {
    Limits {
        max_connections: 4096,
        header_timeout: Duration::from_secs(1),
        body_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        journal: 10_000,
    }
}

/// Sends `request` on a new connection and reads one answer (head and a
/// `Content-Length` body) or EOF; `None` when the connection was closed or
/// reset without an answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(text);
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (!buf.is_empty()).then_some(text),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// `GET /api/health` on a new connection; panics unless it answers 200 in time.
#[track_caller]
fn assert_healthy(addr: SocketAddr, during: &str) {
    let started = Instant::now();
    let req = format!("GET /api/health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let answer = exchange(addr, req.as_bytes()).unwrap_or_default();
    let took = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "{during}: health answered {answer:?}"
    );
    assert!(took < HEALTHY, "{during}: health took {took:?}");
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// Polls until `f` is true or the deadline passes.
fn eventually(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Whether the server has closed `s` (EOF or reset on a read).
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(20))).ok();
    let mut b = [0u8; 256];
    matches!(s.read(&mut b), Ok(0) | Err(_)) && {
        // A timeout is "still open"; only EOF or a reset is closed.
        match s.read(&mut b) {
            Ok(0) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            Ok(_) => false,
        }
    }
}

#[test]
fn slow_bodies_get_408_and_never_stall_the_server() {
    let p = platform(small());
    let addr = p.addr();
    // 50 uploads whose body trickles in a byte every 100 ms: each would take
    // 100 s; the body timeout (2 s) ends every one with 408.
    let slow: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                write!(
                    s,
                    "POST /api/sync/upload HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n"
                )
                .expect("head");
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(6) {
                    if s.write_all(b"x").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                s.set_read_timeout(Some(Duration::from_secs(5))).ok();
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out
            })
        })
        .collect();
    for _ in 0..10 {
        assert_healthy(addr, "slow bodies");
        std::thread::sleep(Duration::from_millis(100));
    }
    for t in slow {
        let out = t.join().expect("slow client");
        assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
        assert!(out.contains("\"request_timeout\""), "{out}");
    }
    eprintln!("peak RSS of the test process: {} MiB", peak_rss_mib());
}

/// Raises the open-file limit to its hard maximum: 3,100 connections are
/// 6,200 descriptors in this one process (client and server ends), more
/// than a default soft limit of 1,024.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        // A failure leaves the limit as it was, and the check below says so.
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(max),
                maximum: Some(max),
            },
        );
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|n| n >= 7000),
        "this test needs 7,000 open files, the hard limit allows {now:?}: raise `ulimit -Hn`"
    );
}

#[test]
fn idle_connections_are_closed_and_never_starve_the_server() {
    raise_fd_limit();
    let p = platform(small());
    let addr = p.addr();
    // 3000 connections that send nothing, and 100 that sent one request and
    // then idle on keep-alive.
    let mut idle: Vec<TcpStream> = (0..3000)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    for _ in 0..100 {
        let mut s = TcpStream::connect(addr).expect("connect");
        write!(s, "GET /api/health HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("write");
        idle.push(s);
    }
    for _ in 0..5 {
        assert_healthy(addr, "3000 idle connections");
    }
    eprintln!("peak RSS with 3100 connections: {} MiB", peak_rss_mib());
    // The header timeout (1 s) closes every one of them, keep-alive ones too.
    let mut open = vec![true; idle.len()];
    let ok = eventually(Duration::from_secs(5), || {
        // Every socket is read each round: a keep-alive one first yields its
        // answer, then EOF.
        for (s, o) in idle.iter_mut().zip(open.iter_mut()) {
            if *o && closed(s) {
                *o = false;
            }
        }
        !open.contains(&true)
    });
    let left: Vec<usize> = (0..open.len()).filter(|&i| open[i]).collect();
    assert!(
        ok,
        "{} idle connections left open: {:?}",
        left.len(),
        &left[..left.len().min(10)]
    );
    assert_healthy(addr, "after the idle connections");
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let p = platform(Limits {
        max_connections: 20,
        ..small()
    });
    let addr = p.addr();
    let mut held: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Let the server accept all 20 before the one over the cap arrives.
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(addr).expect("connect");
    assert!(
        eventually(Duration::from_millis(500), || closed(&mut over)),
        "the 21st connection was kept"
    );
    // Once the header timeout frees the slots, the server answers again.
    let mut open = vec![true; held.len()];
    assert!(eventually(Duration::from_secs(4), || {
        for (s, o) in held.iter_mut().zip(open.iter_mut()) {
            if *o && closed(s) {
                *o = false;
            }
        }
        !open.contains(&true)
    }));
    assert_healthy(addr, "after the cap freed up");
}

#[test]
fn big_bodies_are_refused_by_their_route_limit_before_they_are_read() {
    let p = platform(small());
    let addr = p.addr();
    // Unauthenticated login routes take 16 KiB; a declared 32 MiB is refused
    // at once, a chunked one as soon as it passes 16 KiB.
    let attackers: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(10))).ok();
                if i % 2 == 0 {
                    write!(s, "POST /api/cli-connect/start HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 33554432\r\n\r\n")
                        .expect("head");
                } else {
                    write!(s, "POST /api/cli-connect/refresh HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n")
                        .expect("head");
                    let chunk = vec![b'x'; 64 * 1024];
                    for _ in 0..512 {
                        let head = format!("{:x}\r\n", chunk.len());
                        if s.write_all(head.as_bytes()).is_err()
                            || s.write_all(&chunk).is_err()
                            || s.write_all(b"\r\n").is_err()
                        {
                            break;
                        }
                    }
                }
                let mut out = vec![0u8; 512];
                let n = s.read(&mut out).unwrap_or(0);
                String::from_utf8_lossy(&out[..n]).into_owned()
            })
        })
        .collect();
    assert_healthy(addr, "big bodies");
    for t in attackers {
        let out = t.join().expect("attacker");
        assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
        assert!(out.contains("request body is larger than 16 KiB"), "{out}");
    }
    eprintln!("peak RSS after 16 big bodies: {} MiB", peak_rss_mib());
}

#[test]
fn conflicting_framing_is_refused_with_400() {
    let p = platform(small());
    let addr = p.addr();
    for framing in [
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: 5, 6",
        "Content-Length: -1",
        "Transfer-Encoding: gzip",
    ] {
        let req = format!(
            "POST /api/cli-connect/start HTTP/1.1\r\nHost: {addr}\r\n{framing}\r\n\r\n{{}}xxxx"
        );
        let out = exchange(addr, req.as_bytes()).unwrap_or_default();
        assert!(out.starts_with("HTTP/1.1 400 "), "{framing}: {out:?}");
    }
    assert_healthy(addr, "after bad framing");
}

#[test]
fn the_request_journal_keeps_only_the_latest() {
    let p = platform(Limits {
        journal: 50,
        ..small()
    });
    let addr = p.addr();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    for i in 0..120 {
        write!(s, "GET /api/nope-{i} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("write");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("read");
        assert!(buf[..n].starts_with(b"HTTP/1.1 404 "));
    }
    let paths: Vec<String> = p.requests().into_iter().map(|r| r.path).collect();
    let want: Vec<String> = (70..120).map(|i| format!("/api/nope-{i}")).collect();
    assert_eq!(paths, want);
}
