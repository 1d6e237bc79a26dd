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

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
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

/// Sends log lines to the HA directory's log file, or to stderr if it cannot be opened.
pub fn init_file(dir: &HaDir) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    let process = process_name();
    let pid = std::process::id();
    builder.format(move |buf, record| {
        writeln!(
            buf,
            "[{} {:<5} {process}[{pid}] {}] {}",
            crate::timestamp::utc(SystemTime::now(), crate::timestamp::LOG_LINE),
            record.level(),
            record.target(),
            record.args()
        )
    });
    // At trace level ureq_proto hex-dumps every request and response: Authorization headers,
    // tokens and client secrets included. It never logs below debug, whatever RUST_LOG asks.
    if std::env::var("RUST_LOG").is_ok_and(|v| v.to_ascii_lowercase().contains("trace")) {
        builder.filter_module("ureq_proto", log::LevelFilter::Debug);
        builder.filter_module("ureq", log::LevelFilter::Debug);
    }
    if let Ok(file) = RotatingFile::open(dir.log_file(), max_bytes_from_env()) {
        builder.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let _ = builder.try_init();
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
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    rotated: PathBuf,
    max_bytes: u64,
    file: File,
}

impl RotatingFile {
    /// Opens (creating, mode 0600) `path` for appending.
    pub fn open(path: PathBuf, max_bytes: u64) -> io::Result<RotatingFile> {
        let file = open_append(&path)?;
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        Ok(RotatingFile {
            path,
            rotated: PathBuf::from(rotated),
            max_bytes,
            file,
        })
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

    /// Renames the full file to `.1` under an exclusive lock, unless someone else already has.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.lock()?;
        let ours = self.our_inode()?;
        let still_current = std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()) == ours)
            .unwrap_or(false);
        let renamed = if still_current {
            std::fs::rename(&self.path, &self.rotated)
        } else {
            Ok(())
        };
        let _ = self.file.unlock();
        renamed?;
        self.file = open_append(&self.path)?;
        Ok(())
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
