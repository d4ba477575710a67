//! Whether a result directory may be uploaded: nobody is still writing it
//! (the running `test` holds a lock on its trace file), and every line of
//! `trace_summary.jsonl` is a record, or the lines that are not are known.
//!
//! The lock is `flock(2)` on the trace file itself: the kernel drops it when
//! the process dies however it dies, so a killed run never leaves a stale
//! lock behind, and no extra file sits among the results.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};
use crate::results::{TraceRecord, TRACE};

/// Takes the writer's lock on an open trace file; fails when another
/// process holds it (two runs never write one directory, but say so if so).
/// A file system without locks runs unlocked: the completion mark in
/// summary.json still tells a finished run from one in progress.
pub(crate) fn lock_for_writing(file: &File, path: &Path) -> Result<()> {
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(Error::io("lock", path, e));
    }
    Ok(())
}

/// Refuses a directory whose run is still going: its trace file is locked
/// by the `test` writing it. Uploading it now would send part of the runs.
pub(crate) fn ensure_finished(dir: &Path) -> Result<()> {
    let path = dir.join(TRACE);
    let file = File::open(&path).map_err(|e| Error::io("read", &path, e))?;
    // SAFETY: as above; a shared lock is released when `file` closes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(Error::config(
            format!(
                "the run writing {} is still going; its results are not complete",
                dir.display()
            ),
            Some("wait for `fluxloop test` to finish: it uploads the results itself unless given --skip-upload".into()),
        ));
    }
    // A file system without flock cannot tell; the completion mark in
    // summary.json still does.
    Ok(())
}

/// What a scan of the trace file found.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct TraceScan {
    /// Records that parse.
    pub(crate) records: usize,
    /// 1-based numbers of lines that are not records, the torn last line excluded.
    pub(crate) invalid: Vec<u64>,
    /// The last line is cut short (no newline, not a record): a crash mid-append.
    pub(crate) torn_last: Option<u64>,
}

/// Reads the trace file once and lists the lines that are not records.
pub(crate) fn scan_trace(dir: &Path) -> Result<TraceScan> {
    let path = dir.join(TRACE);
    let mut file = File::open(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.clone(),
            what: "trace file",
        },
        _ => Error::io("read", &path, e),
    })?;
    let ends_with_newline = {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut last = *b"\n";
        if len > 0 {
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .and_then(|_| file.rewind())
                .map_err(|e| Error::io("read", &path, e))?;
        }
        last[0] == b'\n'
    };
    let mut scan = TraceScan::default();
    let mut last_line = 0u64;
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::io("read", &path, e))?;
        let n = i as u64 + 1;
        last_line = n;
        if line.trim_ascii().is_empty() {
            continue;
        }
        match serde_json::from_slice::<TraceRecord>(&line) {
            Ok(_) => scan.records += 1,
            Err(_) => scan.invalid.push(n),
        }
    }
    if !ends_with_newline && scan.invalid.last() == Some(&last_line) {
        scan.invalid.pop();
        scan.torn_last = Some(last_line);
    }
    Ok(scan)
}

/// `3, 5-7, 9` for people; long lists are cut after a few ranges.
pub(crate) fn line_list(lines: &[u64]) -> String {
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for &n in lines {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => ranges.push((n, n)),
        }
    }
    let shown: Vec<String> = ranges
        .iter()
        .take(10)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let mut s = shown.join(", ");
    if ranges.len() > 10 {
        s.push_str(", …");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"run_id":"r","success":true}"#;

    fn scan(text: &str) -> TraceScan {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TRACE), text).unwrap();
        scan_trace(dir.path()).unwrap()
    }

    #[test]
    fn only_an_unterminated_last_line_counts_as_torn() {
        let torn = scan(&format!("{OK}\n{OK}\n{{\"run_id\":\"x"));
        assert_eq!(
            (torn.records, torn.invalid, torn.torn_last),
            (2, vec![], Some(3))
        );
        let bad = scan(&format!("{OK}\nnope\n{OK}\n[1]\n"));
        assert_eq!(
            (bad.records, bad.invalid, bad.torn_last),
            (2, vec![2, 4], None)
        );
        let both = scan(&format!("x\n\n{OK}\n{{"));
        assert_eq!((both.invalid, both.torn_last), (vec![1], Some(4)));
        assert_eq!(scan(""), TraceScan::default());
    }

    #[test]
    fn line_lists_merge_ranges() {
        assert_eq!(line_list(&[3, 5, 6, 7, 9]), "3, 5-7, 9");
        let many: Vec<u64> = (1..=40).map(|n| n * 2).collect();
        assert!(line_list(&many).ends_with(", …"));
    }

    #[test]
    fn a_held_lock_refuses_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(TRACE);
        let writer = File::create(&path).unwrap();
        lock_for_writing(&writer, &path).unwrap();
        assert!(ensure_finished(dir.path()).is_err());
        drop(writer);
        ensure_finished(dir.path()).unwrap();
    }
}
