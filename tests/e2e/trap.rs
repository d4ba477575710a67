//! A misbehaving server on 127.0.0.1 for the attack tests: it records every
//! request it receives, whole, and answers with what the test scripts. Used
//! as a hostile platform, and as a proxy that logs what reaches it and never
//! connects anywhere.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request as received: the request line, headers and body, raw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub raw: String,
}

impl Seen {
    /// The request line, `POST /api/sync/pull HTTP/1.1`.
    pub fn line(&self) -> &str {
        self.raw.lines().next().unwrap_or("")
    }
}

/// What to answer: status, extra headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

pub fn json(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.to_string(),
    }
}

type Responder = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct Trap {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Trap {
    /// A server answering every request with `respond`.
    pub fn start(respond: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Trap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let respond: Arc<Responder> = Arc::new(respond);
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (seen, respond) = (Arc::clone(&seen), Arc::clone(&respond));
                            std::thread::spawn(move || serve(conn, &seen, &*respond));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Trap {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// A proxy that records what it is sent and refuses to connect anywhere.
    pub fn proxy() -> Trap {
        Trap::start(|_| {
            json(
                403,
                r#"{"error":{"code":"forbidden","message":"this proxy connects nowhere"}}"#,
            )
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Everything received, as one string, for "did the secret arrive" checks.
    pub fn all(&self) -> String {
        self.seen()
            .iter()
            .map(|s| s.raw.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (headers, then Content-Length bytes) and answers it.
fn serve(mut conn: TcpStream, seen: &Mutex<Vec<Seen>>, respond: &Responder) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length.min(16 << 20) {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request = Seen {
        raw: String::from_utf8_lossy(&buf).into_owned(),
    };
    seen.lock().unwrap().push(request.clone());
    let reply = respond(&request);
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", reply.body.len()));
    out.push_str(&reply.body);
    let _ = conn.write_all(out.as_bytes());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
