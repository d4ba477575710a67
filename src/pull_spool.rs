//! A pull on its way to disk: the response parsed as it streams, every
//! array (`input_items`, `personas`, `criteria_pack`) written item by item
//! into a staging directory beside the workspace's `pulled/` directories,
//! then the whole set swapped in with one rename.
//!
//! Memory stays flat whatever the platform sends (no array is ever held),
//! and `pulled/` is always one whole bundle: a kill at any instant leaves
//! the previous set or the new one, never a new `inputs.json` beside an old
//! `sync_meta.json`. What a killed pull leaves behind (the staging
//! directory, the spooled body, the previous set after the swap) carries
//! the pid of its process, and the next pull removes it once that process
//! is gone.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The arrays streamed to files, and the file each becomes.
pub(crate) const STREAMED: [(&str, &str); 3] = [
    ("input_items", crate::pulled::INPUTS),
    ("personas", crate::pulled::PERSONAS),
    ("criteria_pack", crate::pulled::CRITERIA),
];
/// Names of what a pull leaves in `.fluxloop/` while it runs.
const PREFIX: &str = ".pull.";

/// A file written from one streamed array.
#[derive(Debug, Default, Clone)]
pub(crate) struct Spooled {
    /// Hex SHA-256 of the file as written.
    pub(crate) sha256: String,
    pub(crate) count: usize,
}

/// A staging directory in `.fluxloop/`, removed on drop unless swapped in.
pub(crate) struct Staging {
    pub(crate) path: PathBuf,
    swapped: bool,
}

impl Staging {
    /// Creates `<fluxloop_dir>/.pull.<pid>.<uuid>.d`, first removing what
    /// killed pulls left there.
    pub(crate) fn create(fluxloop_dir: &Path) -> std::io::Result<Staging> {
        remove_leftovers(fluxloop_dir);
        let path = fluxloop_dir.join(temp_name("d"));
        std::fs::create_dir(&path)?;
        Ok(Staging {
            path,
            swapped: false,
        })
    }

    /// Makes the staged set `dir`: fsync every file and the directory, then
    /// one rename. An existing `dir` is exchanged with the staging
    /// directory in the same system call (Linux `RENAME_EXCHANGE`), so
    /// `dir` never is missing or mixed; the previous set is removed after.
    pub(crate) fn swap_into(mut self, dir: &Path) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.path)? {
            File::open(entry?.path())?.sync_all()?;
        }
        File::open(&self.path)?.sync_all()?;
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        if dir.exists() {
            exchange(&self.path, dir)?;
            // The staging path now holds the previous set; Drop removes it.
        } else {
            std::fs::rename(&self.path, dir)?;
            self.swapped = true;
        }
        File::open(parent)?.sync_all()?;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.swapped {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// `.pull.<pid>.<uuid>.<ext>`: the pid says whose it is.
pub(crate) fn temp_name(ext: &str) -> String {
    format!(
        "{PREFIX}{}.{}.{ext}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Removes the `.pull.<pid>.…` entries of processes that no longer exist.
fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('.').next())
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // The raw system call: older C libraries (musl before 1.2.5) have no
    // renameat2 wrapper, and the kernel has had it since 3.15.
    // SAFETY: both paths are NUL-terminated and outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Elsewhere: move the previous set aside, then the new one in. A kill
/// between the two leaves no `pulled/` (the next pull writes it), never a mix.
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&aside, a)
}

/// Writes the items of an array exactly as `serde_json::to_vec_pretty` of the
/// whole array (then a newline) would, hashing as it goes.
struct ItemsWriter {
    out: BufWriter<File>,
    hash: Sha256,
    count: usize,
    scratch: Vec<u8>,
    indented: Vec<u8>,
}

impl ItemsWriter {
    fn create(path: &Path) -> std::io::Result<ItemsWriter> {
        Ok(ItemsWriter {
            out: BufWriter::with_capacity(64 * 1024, File::create(path)?),
            hash: Sha256::new(),
            count: 0,
            scratch: Vec::new(),
            indented: Vec::new(),
        })
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn push(&mut self, item: &Value) -> std::io::Result<()> {
        self.scratch.clear();
        serde_json::to_writer_pretty(&mut self.scratch, item)?;
        // One level deeper: JSON strings hold no raw newline, so every
        // newline in the output is a line break of the layout.
        self.indented.clear();
        self.indented
            .extend_from_slice(if self.count == 0 { b"[\n  " } else { b",\n  " });
        for &b in &self.scratch {
            self.indented.push(b);
            if b == b'\n' {
                self.indented.extend_from_slice(b"  ");
            }
        }
        let chunk = std::mem::take(&mut self.indented);
        let r = self.put(&chunk);
        self.indented = chunk;
        self.count += 1;
        r
    }

    fn finish(mut self) -> std::io::Result<Spooled> {
        let end: &[u8] = if self.count == 0 { b"[]\n" } else { b"\n]\n" };
        self.put(end)?;
        self.out.flush()?;
        Ok(Spooled {
            sha256: crate::pulled::hex(&self.hash.finalize()),
            count: self.count,
        })
    }
}

/// The top-level object: streamed arrays go to their files, the rest (small:
/// bundle, scenario, run spec) into a map.
struct TopLevel<'a> {
    dir: &'a Path,
    spooled: &'a mut [Option<Spooled>; 3],
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a pull response object")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut doc = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match STREAMED.iter().position(|(k, _)| *k == key) {
                Some(i) => {
                    let path = self.dir.join(STREAMED[i].1);
                    let writer = ItemsWriter::create(&path).map_err(A::Error::custom)?;
                    let spooled = map.next_value_seed(Items(writer))?;
                    self.spooled[i] = Some(spooled);
                }
                None => {
                    let v: Value = map.next_value()?;
                    doc.insert(key, v);
                }
            }
        }
        Ok(doc)
    }
}

struct Items(ItemsWriter);

impl<'de> DeserializeSeed<'de> for Items {
    type Value = Spooled;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Spooled, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items {
    type Value = Spooled;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> std::result::Result<Spooled, A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            self.0.push(&item).map_err(A::Error::custom)?;
        }
        self.0.finish().map_err(A::Error::custom)
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Spooled, E> {
        self.0.finish().map_err(E::custom)
    }
}

/// Parses a pull response from `reader`, writing its arrays into `dir`.
/// Returns the rest of the object and, per entry of [`STREAMED`], what was
/// written (`None` when the key was absent). Errors are the reason the
/// body is not a pull response.
pub(crate) fn parse(
    reader: impl Read,
    dir: &Path,
) -> std::result::Result<(Value, [Option<Spooled>; 3]), String> {
    let mut spooled: [Option<Spooled>; 3] = Default::default();
    let mut de =
        serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(64 * 1024, reader));
    let top = TopLevel {
        dir,
        spooled: &mut spooled,
    };
    let doc = serde::Deserializer::deserialize_map(&mut de, top)
        .and_then(|doc| de.end().map(|_| doc))
        .map_err(|e| e.to_string())?;
    Ok((Value::Object(doc), spooled))
}
