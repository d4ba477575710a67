//! The request recorder ([`crate::Config::record_requests`]): one JSON line
//! per `/api` request, with the route template it matched, its query and its
//! JSON body, so a test can check every request a client sent against
//! `openapi.yaml`. Unlike the journal ([`crate::Platform::requests`]) it keeps
//! bodies, secrets included, so it is for tests only and off by default.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::json;

use super::Request;
use crate::PlatformError;

/// An open recording file.
pub(super) struct Recorder {
    file: Mutex<File>,
}

impl Recorder {
    /// Opens `path` for appending, creating it when missing.
    pub(super) fn open(path: &Path) -> Result<Recorder, PlatformError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| PlatformError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Recorder {
            file: Mutex::new(file),
        })
    }

    /// Appends `req` when it is an `/api` request. `route` is the template it
    /// matched (`None`: no route has that method and path); `body` is `null`
    /// when the request had none (or it was refused before it was read).
    pub(super) fn write(&self, req: &Request, route: Option<&str>) {
        if req.path != "/api" && !req.path.starts_with("/api/") {
            return;
        }
        let mut head = json!({
            "method": req.method,
            "route": route,
            "path": req.path,
            "query": req.query,
        })
        .to_string();
        head.pop();
        head.push_str(",\"body\":");
        // An upload is megabytes, answered against a client's timeout: the
        // body goes in as sent, neither parsed nor printed again. A body that
        // is not JSON makes the line unreadable, which the checker reports.
        // Outside strings JSON's line breaks are only whitespace (inside
        // them they are escaped), so blanking them keeps the body one line.
        let sent = &req.body[..];
        let body: Cow<'_, [u8]> = if sent.iter().all(u8::is_ascii_whitespace) {
            Cow::Borrowed(b"null")
        } else if sent.contains(&b'\n') || sent.contains(&b'\r') {
            Cow::Owned(
                sent.iter()
                    .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                    .collect(),
            )
        } else {
            Cow::Borrowed(sent)
        };
        // One line per request under the lock, so lines never interleave. A
        // failed write loses the line, and the checker then misses it: the
        // recorder must not fail the request it records.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = file
            .write_all(head.as_bytes())
            .and_then(|()| file.write_all(&body))
            .and_then(|()| file.write_all(b"}\n"));
    }
}
