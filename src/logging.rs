//! Logging to `$CSR_HA_DIR/csr_ha.log` through `log`/`env_logger`, level from `RUST_LOG`
//! (default `info`). Every line about a node names its index and event; secrets never appear.
//!
//! The server and every handler process append to the same file, each line whole (one `write`
//! on an `O_APPEND` descriptor per record), so lines of different processes never interleave:
//!
//! ```text
//! [2026-11-24T19:19:00.123Z INFO  ha_server[28654] csr_ha::event_mgr] revert for node(s) [3]: handler pid 28660 started
//! ```
//!
//! The file is capped at `$CSR_HA_LOG_MAX_BYTES` (default 5 MiB): the writer that would push it
//! past the cap renames it to `csr_ha.log.1` (replacing the previous one) and starts a new file,
//! so the logs never hold more than about twice the cap on the router's small disk.
//!
//! `guestshell destroy` wipes the HA directory, so a rotated file is then moved out of it, to
//! bootflash (as the original copied its full log to `/bootflash/guest-share`):
//!
//! ```text
//! csr_ha.log ──rename──► csr_ha.log.1 ──move──► /bootflash/guest-share/csr_ha/csr_ha.log.20261124T191900.123Z
//!                                               (else /bootflash/csr_ha/; the newest 5 kept)
//! ```
//!
//! `$CSR_HA_LOG_ARCHIVE_DIR` names another directory (created if missing), `none` keeps the
//! rotated file as `csr_ha.log.1`. Without bootflash (not a router) nothing is archived. A
//! failed move never costs a line: the file stays `csr_ha.log.1` and the new log's first line
//! says why.

use std::fmt::Display;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::paths::HaDir;

/// Default size cap of `csr_ha.log` before it is rotated to `csr_ha.log.1`.
pub const DEFAULT_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// `$CSR_HA_LOG_MAX_BYTES` if it is a positive integer, else [`DEFAULT_MAX_BYTES`].
pub fn max_bytes_from_env() -> u64 {
    std::env::var("CSR_HA_LOG_MAX_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_BYTES)
}

/// How many archived logs the archive directory keeps (the newest).
pub const ARCHIVE_KEEP: usize = 5;

/// The archive's parents on a router, in order: the first that exists gets a `csr_ha/`
/// subdirectory. `guest-share` is the directory IOS and guestshell share.
pub const BOOTFLASH_ARCHIVE_PARENTS: [&str; 2] = ["/bootflash/guest-share", "/bootflash"];

/// Sends log lines to the HA directory's log file, or to stderr if it cannot be opened.
pub fn init_file(dir: &HaDir) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    let process = process_name();
    let pid = std::process::id();
    builder.format(move |buf, record| {
        buf.write_all(
            line(
                &process,
                pid,
                record.level(),
                record.target(),
                record.args(),
            )
            .as_bytes(),
        )
    });
    // At trace level ureq_proto hex-dumps every request and response: Authorization headers,
    // tokens and client secrets included. It never logs below debug, whatever RUST_LOG asks.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        builder.filter_module("ureq_proto", log::LevelFilter::Debug);
        builder.filter_module("ureq", log::LevelFilter::Debug);
    }
    if let Ok(file) = RotatingFile::open(dir.log_file(), max_bytes_from_env()) {
        let file = file.archiving_to(Archive::from_env());
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let _ = builder.try_init();
}

/// One log line, newline included:
///
/// ```text
/// [2026-11-24T19:19:00.123Z INFO  ha_server[28654] csr_ha::event_mgr] message
/// ```
fn line(process: &str, pid: u32, level: log::Level, target: &str, message: &dyn Display) -> String {
    format!(
        "[{} {:<5} {process}[{pid}] {target}] {message}\n",
        crate::timestamp::utc(SystemTime::now(), crate::timestamp::LOG_LINE),
        level,
    )
}

/// Where a rotated log goes so that it outlives guestshell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Archive {
    /// Kept as `csr_ha.log.1` (`CSR_HA_LOG_ARCHIVE_DIR=none`).
    Off,
    /// `$CSR_HA_LOG_ARCHIVE_DIR`: this directory, created (0700) if missing.
    Dir(PathBuf),
    /// `<parent>/csr_ha/` under the first of these parents that exists and takes the file
    /// ([`BOOTFLASH_ARCHIVE_PARENTS`]); none existing means not a router: kept, no warning.
    Under(Vec<PathBuf>),
}

impl Archive {
    /// From `$CSR_HA_LOG_ARCHIVE_DIR` (see [`Archive::from_value`]).
    pub fn from_env() -> Archive {
        Archive::from_value(std::env::var_os("CSR_HA_LOG_ARCHIVE_DIR"))
    }

    /// `none` is [`Archive::Off`], a path is [`Archive::Dir`], unset or empty is bootflash.
    pub fn from_value(value: Option<std::ffi::OsString>) -> Archive {
        match value {
            Some(v) if v.eq_ignore_ascii_case("none") => Archive::Off,
            Some(v) if !v.is_empty() => Archive::Dir(PathBuf::from(v)),
            _ => Archive::Under(
                BOOTFLASH_ARCHIVE_PARENTS
                    .iter()
                    .map(PathBuf::from)
                    .collect(),
            ),
        }
    }

    /// The directories to try, in order.
    fn candidates(&self) -> Vec<PathBuf> {
        match self {
            Archive::Off => Vec::new(),
            Archive::Dir(dir) => vec![dir.clone()],
            Archive::Under(parents) => parents
                .iter()
                .filter(|p| p.is_dir())
                .map(|p| p.join("csr_ha"))
                .collect(),
        }
    }

    /// Moves `rotated` into the first candidate directory that takes it, as
    /// `<its name without .1>.<UTC time>`, and keeps the newest [`ARCHIVE_KEEP`] there.
    pub fn store(&self, rotated: &Path) -> Stored {
        let mut errors = Vec::new();
        for dir in self.candidates() {
            match store_in(rotated, &dir) {
                Ok(dest) => {
                    return match prune(&dir, &prefix_of(rotated), ARCHIVE_KEEP) {
                        Ok(()) => Stored::At(dest),
                        Err(e) => Stored::NotPruned(dest, e),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        match errors.is_empty() {
            true => Stored::Nowhere,
            false => Stored::Failed(errors.join("; ")),
        }
    }
}

/// What became of a rotated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Archiving is off, or there is no bootflash: it stays `csr_ha.log.1`.
    Nowhere,
    /// Moved here.
    At(PathBuf),
    /// Moved here, but older archived logs could not be removed (the error).
    NotPruned(PathBuf, String),
    /// Every directory refused it (the errors): it stays `csr_ha.log.1`.
    Failed(String),
}

/// `csr_ha.log.`: what an archived log's name starts with (the rotated file's name minus `.1`).
fn prefix_of(rotated: &Path) -> String {
    let name = rotated
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}.", name.strip_suffix(".1").unwrap_or(&name))
}

/// Moves `rotated` into `dir` (created 0700 if missing) under a new timestamped name: a rename
/// where `dir` is on the same file system, else a copy (a temp file, fsync, rename) and then the
/// removal of `rotated`.
fn store_in(rotated: &Path, dir: &Path) -> Result<PathBuf, String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let stamp = crate::timestamp::utc(SystemTime::now(), "%Y%m%dT%H%M%S%.3fZ");
    let base = format!("{}{stamp}", prefix_of(rotated));
    // Rotations within one millisecond: `-01`, `-02`, … after the highest taken, never a gap
    // that pruning left (a newer log must sort after every older one).
    let name = |n: usize| match n {
        0 => dir.join(&base),
        n => dir.join(format!("{base}-{n:02}")),
    };
    let next = (0..100)
        .filter(|&n| std::fs::symlink_metadata(name(n)).is_ok())
        .map(|n| n + 1)
        .max()
        .unwrap_or(0);
    if next >= 100 {
        return Err(format!("{} already holds {base}…", dir.display()));
    }
    let dest = name(next);
    if std::fs::rename(rotated, &dest).is_ok() {
        return Ok(dest);
    }
    copy_then_remove(rotated, &dest)?;
    Ok(dest)
}

/// Copies `src` to `dest` (owner-only, complete or not at all), then removes `src`. A `src`
/// that cannot be removed stays until the next rotation replaces it; `dest` is whole.
fn copy_then_remove(src: &Path, dest: &Path) -> Result<(), String> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let fail = |what: &str, e: io::Error| format!("cannot {what} {}: {e}", dest.display());
    let mut from = File::open(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".csr_ha.log.")
        .tempfile_in(dir)
        .map_err(|e| fail("write", e))?;
    io::copy(&mut from, tmp.as_file_mut()).map_err(|e| fail("write", e))?;
    tmp.as_file().sync_all().map_err(|e| fail("write", e))?;
    tmp.persist(dest).map_err(|e| fail("write", e.error))?;
    let _ = std::fs::remove_file(src);
    Ok(())
}

/// Removes all but the newest `keep` archived logs (`<prefix><UTC time>`) from `dir`; the names
/// sort by time. Other files are never touched.
fn prune(dir: &Path, prefix: &str, keep: usize) -> Result<(), String> {
    let list = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut archived: Vec<String> = list
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(prefix).is_some_and(|rest| {
                rest.len() > 8 && rest.as_bytes()[..8].iter().all(u8::is_ascii_digit)
            })
        })
        .collect();
    archived.sort_unstable_by(|a, b| b.cmp(a));
    for old in archived.iter().skip(keep) {
        let path = dir.join(old);
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove the old {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The running binary's file name (`ha_server`, `ha_event_handler`, ...), to tell processes
/// apart in the shared log.
fn process_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "csr_ha".into())
}

/// An append-only log file that rotates itself to `<path>.1` when it would exceed `max_bytes`.
///
/// Several processes may hold the same log open. Before each write the writer looks at the
/// path, not at its own descriptor: if another process has rotated the file meanwhile, it
/// reopens the new one instead of writing into `.1`. Only a writer holding an exclusive `flock`
/// on the current file, and seeing that the path still names that file, renames it, so two
/// writers that cross the cap together rotate once, not twice.
///
/// With an [`Archive`], the rotating writer then moves `.1` out, still under the lock (a second
/// writer crossing the cap meanwhile waits, then finds the rotation done), and starts the new
/// file with a line saying where it went, or why it stayed.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    file: File,
    archive: Archive,
}

impl RotatingFile {
    /// Opens (creating, mode 0600) `path` for appending; rotated files stay beside it.
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<RotatingFile> {
        let file = open_append(&path)?;
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        Ok(RotatingFile {
            path,
            rotated: PathBuf::from(rotated),
            max_bytes,
            file,
            archive: Archive::Off,
        })
    }

    /// Rotated files go to `archive`.
    pub fn archiving_to(mut self, archive: Archive) -> RotatingFile {
        self.archive = archive;
        self
    }

    /// The inode our descriptor refers to.
    fn our_inode(&self) -> io::Result<(u64, u64)> {
        let m = self.file.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    /// Makes `self.file` the current log file with room for `len` more bytes, rotating if not.
    fn prepare(&mut self, len: u64) -> io::Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) != self.our_inode()? => {
                self.file = open_append(&self.path)?
            }
            Ok(m) if m.len() == 0 || m.len() + len <= self.max_bytes => return Ok(()),
            Ok(_) => {}
            // Deleted under us (e.g. by hand): start a new file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.file = open_append(&self.path)?;
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        let size = self.file.metadata()?.len();
        if size == 0 || size + len <= self.max_bytes {
            return Ok(());
        }
        self.rotate()
    }

    /// Renames the full file to `.1` under an exclusive lock, unless someone else already has,
    /// and archives it.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.lock()?;
        let ours = self.our_inode()?;
        let still_current = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == ours)
            .unwrap_or(false);
        let mut note = None;
        let renamed = if still_current {
            std::fs::rename(&self.path, &self.rotated)
        } else {
            Ok(())
        };
        if still_current && renamed.is_ok() {
            note = self.archive_rotated();
        }
        let _ = self.file.unlock();
        renamed?;
        self.file = open_append(&self.path)?;
        if let Some(note) = note {
            let _ = self.file.write_all(note.as_bytes());
        }
        Ok(())
    }

    /// Moves `.1` to the archive; the log line saying where it went or why it stayed.
    fn archive_rotated(&self) -> Option<String> {
        let (level, message) = match self.archive.store(&self.rotated) {
            Stored::Nowhere => return None,
            Stored::At(dest) => (
                log::Level::Info,
                format!(
                    "the previous log is archived as {} (the newest {ARCHIVE_KEEP} are kept there)",
                    dest.display()
                ),
            ),
            Stored::NotPruned(dest, e) => (
                log::Level::Warn,
                format!("the previous log is archived as {}, but {e}", dest.display()),
            ),
            Stored::Failed(e) => (
                log::Level::Warn,
                format!(
                    "cannot archive the previous log ({e}); it stays {}, replaced at the next rotation",
                    self.rotated.display()
                ),
            ),
        };
        Some(line(
            &process_name(),
            std::process::id(),
            level,
            module_path!(),
            &message,
        ))
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A failed rotation must not lose the line: write to whatever file we have.
        let _ = self.prepare(buf.len() as u64);
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    crate::fs_util::open_owner_only(path, crate::fs_util::OpenFor::Append)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh `csr_ha.log` path in `tmp` and a writer on it capped at `cap` bytes.
    fn log_in(tmp: &tempfile::TempDir, cap: u64) -> (PathBuf, RotatingFile) {
        let path = tmp.path().join("csr_ha.log");
        let log = RotatingFile::open(path.clone(), cap).expect("test file io");
        (path, log)
    }

    /// Writes test line `n`.
    fn put(log: &mut RotatingFile, n: usize) {
        log.write_all(line(n).as_bytes()).expect("test file io");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn line(n: usize) -> String {
        // 20 bytes per line.
        format!("line {n:013}\n")
    }

    #[test]
    fn rotates_once_past_the_cap_and_keeps_one_old_file() {
        let tmp = tempfile::tempdir().expect("test file io");
        let (path, mut log) = log_in(&tmp, 50);
        for n in 0..3 {
            put(&mut log, n);
        }
        // 2 lines (40 bytes) fit; the third would make 60 > 50.
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(0) + &line(1));
        assert_eq!(read(&path), line(2));
        for n in 3..5 {
            put(&mut log, n);
        }
        // The second rotation replaces the first .1: only one old file is ever kept.
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(2) + &line(3));
        assert_eq!(read(&path), line(4));
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("test file io")
            .map(|e| e.expect("test file io").file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_writer_follows_a_rotation_done_by_another_process() {
        let tmp = tempfile::tempdir().expect("test file io");
        let (path, mut server) = log_in(&tmp, 50);
        let mut handler = RotatingFile::open(path.clone(), 50).expect("test file io");
        put(&mut server, 0);
        put(&mut handler, 1);
        put(&mut server, 2); // rotates
        put(&mut handler, 3); // must go to the new file, not .1
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(0) + &line(1));
        assert_eq!(read(&path), line(2) + &line(3));
        // Both writers now see a full file: exactly one of them rotates it.
        put(&mut handler, 4);
        put(&mut server, 5);
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(2) + &line(3));
        assert_eq!(read(&path), line(4) + &line(5));
    }

    #[test]
    fn a_line_longer_than_the_cap_is_still_written_whole() {
        let tmp = tempfile::tempdir().expect("test file io");
        let (path, mut log) = log_in(&tmp, 10);
        put(&mut log, 0);
        put(&mut log, 1);
        assert_eq!(read(&path), line(1));
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(0));
    }

    /// Every file name in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|list| {
                list.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_rotated_log_moves_to_the_archive_and_the_new_log_says_where() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test file io");
        let archive = tmp.path().join("bootflash/csr_ha");
        let (path, log) = log_in(&tmp, 50);
        let mut log = log.archiving_to(Archive::Dir(archive.clone()));
        for n in 0..3 {
            put(&mut log, n);
        }
        assert!(!tmp.path().join("csr_ha.log.1").exists());
        let archived = names(&archive);
        assert_eq!(archived.len(), 1, "{archived:?}");
        assert!(archived[0].starts_with("csr_ha.log.20"), "{archived:?}");
        let moved = archive.join(&archived[0]);
        assert_eq!(read(&moved), line(0) + &line(1));
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .expect("test file io")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&moved), 0o600);
        assert_eq!(mode(&archive), 0o700);
        let now = read(&path);
        let (note, rest) = now.split_once('\n').expect("a note line");
        assert!(note.contains(" INFO  "), "{note}");
        assert!(
            note.ends_with(&format!(
                "csr_ha::logging] the previous log is archived as {} (the newest 5 are kept there)",
                moved.display()
            )),
            "{note}"
        );
        assert_eq!(rest, line(2));
    }

    #[test]
    fn the_archive_keeps_the_newest_five_and_nothing_else_is_touched() {
        let tmp = tempfile::tempdir().expect("test file io");
        let archive = tmp.path().join("archive");
        std::fs::create_dir(&archive).expect("test file io");
        std::fs::write(archive.join("notes.txt"), "mine").expect("test file io");
        std::fs::write(archive.join("csr_ha.log.old"), "mine").expect("test file io");
        // A cap of one line: each put rotates the previous line out.
        let (_, log) = log_in(&tmp, 20);
        let mut log = log.archiving_to(Archive::Dir(archive.clone()));
        for n in 0..9 {
            put(&mut log, n);
        }
        let all = names(&archive);
        let archived: Vec<&String> = all
            .iter()
            .filter(|n| n.starts_with("csr_ha.log.2"))
            .collect();
        assert_eq!(archived.len(), ARCHIVE_KEEP, "{all:?}");
        assert_eq!(all.len(), ARCHIVE_KEEP + 2, "{all:?}");
        // The newest five rotations: lines 3..=7 (line 8 is the current log's).
        let mut kept: Vec<String> = archived
            .iter()
            .map(|n| read(&archive.join(n)))
            .map(|text| text.lines().last().unwrap_or_default().to_string() + "\n")
            .collect();
        kept.sort();
        assert_eq!(kept, (3..8).map(line).collect::<Vec<_>>(), "{all:?}");
    }

    #[test]
    fn an_archive_that_fails_keeps_the_file_local_and_logging_goes_on() {
        let tmp = tempfile::tempdir().expect("test file io");
        // A directory cannot be made under a regular file, even by root.
        std::fs::write(tmp.path().join("file"), "").expect("test file io");
        let (path, log) = log_in(&tmp, 50);
        let mut log = log.archiving_to(Archive::Dir(tmp.path().join("file/archive")));
        for n in 0..3 {
            put(&mut log, n);
        }
        assert_eq!(read(&tmp.path().join("csr_ha.log.1")), line(0) + &line(1));
        let now = read(&path);
        let (note, rest) = now.split_once('\n').expect("a note line");
        assert!(note.contains(" WARN  "), "{note}");
        assert!(
            note.contains("cannot archive the previous log (cannot create "),
            "{note}"
        );
        assert!(note.contains("it stays "), "{note}");
        assert_eq!(rest, line(2));
        // The warning made the new file full: the next line rotates again, and is written.
        put(&mut log, 3);
        assert!(read(&tmp.path().join("csr_ha.log.1")).ends_with(&line(2)));
        assert!(read(&path).ends_with(&line(3)));
    }

    #[test]
    fn bootflash_guest_share_first_then_bootflash_and_nothing_without_either() {
        let tmp = tempfile::tempdir().expect("test file io");
        let guest_share = tmp.path().join("bootflash/guest-share");
        let bootflash = tmp.path().join("bootflash");
        let under = Archive::Under(vec![guest_share.clone(), bootflash.clone()]);
        let rotated = tmp.path().join("csr_ha.log.1");
        let store = |text: &str| {
            std::fs::write(&rotated, text).expect("test file io");
            under.store(&rotated)
        };

        // Not a router: nowhere to go, and no complaint.
        assert_eq!(store("a"), Stored::Nowhere);
        assert_eq!(read(&rotated), "a");

        std::fs::create_dir_all(&guest_share).expect("test file io");
        let Stored::At(dest) = store("b") else {
            panic!("not archived")
        };
        assert_eq!(dest.parent(), Some(guest_share.join("csr_ha").as_path()));
        assert_eq!(read(&dest), "b");

        // guest-share refuses (its csr_ha is a file): /bootflash/csr_ha takes it.
        std::fs::remove_dir_all(guest_share.join("csr_ha")).expect("test file io");
        std::fs::write(guest_share.join("csr_ha"), "").expect("test file io");
        let Stored::At(dest) = store("c") else {
            panic!("not archived")
        };
        assert_eq!(dest.parent(), Some(bootflash.join("csr_ha").as_path()));
        assert!(!rotated.exists());
    }

    #[test]
    fn archive_dir_from_the_variable() {
        let from = |v: Option<&str>| Archive::from_value(v.map(Into::into));
        assert_eq!(from(Some("none")), Archive::Off);
        assert_eq!(from(Some("NONE")), Archive::Off);
        assert_eq!(
            from(Some("/var/tmp/logs")),
            Archive::Dir("/var/tmp/logs".into())
        );
        let bootflash = Archive::Under(vec!["/bootflash/guest-share".into(), "/bootflash".into()]);
        assert_eq!(from(Some("")), bootflash);
        assert_eq!(from(None), bootflash);
    }

    #[test]
    fn across_file_systems_the_log_is_copied_whole_then_removed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test file io");
        let src = tmp.path().join("csr_ha.log.1");
        std::fs::write(&src, line(0) + &line(1)).expect("test file io");
        let dest = tmp.path().join("csr_ha.log.20261124T191900.123Z");
        copy_then_remove(&src, &dest).expect("copied");
        assert!(!src.exists());
        assert_eq!(read(&dest), line(0) + &line(1));
        let mode = std::fs::metadata(&dest)
            .expect("test file io")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(names(tmp.path()), ["csr_ha.log.20261124T191900.123Z"]);
    }

    #[test]
    fn a_deleted_log_is_recreated_with_owner_only_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("test file io");
        let (path, mut log) = log_in(&tmp, 1000);
        put(&mut log, 0);
        std::fs::remove_file(&path).expect("test file io");
        put(&mut log, 1);
        assert_eq!(read(&path), line(1));
        let mode = std::fs::metadata(&path)
            .expect("test file io")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
