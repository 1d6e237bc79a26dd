//! Files in one place: the one atomic replace, the one owner-only open, and the one bounded,
//! non-blocking read of a file a user names.
//!
//! ```text
//! replace(path, bytes):   <dir of the real file>/.<name>.XXXXXX  (mode: kept, else 0600)
//!                         write ─► fsync ─► rename over <name> ─► fsync <dir>
//! read_regular(path, n):  open(O_RDONLY|O_NONBLOCK) ─► fstat: a regular file of ≤ n bytes? ─► read
//! ```
//!
//! A crash during [`replace`] leaves the old file or the new one, never half of either; what
//! it may leave is a temp file, which [`remove_leftovers`] removes at the next start. A symlink
//! is written through: the temp file goes beside the link's target and is renamed over it, so
//! the link stays a link and its target is what changes.
//!
//! [`read_regular`] never blocks and never reads without end: a FIFO, a device (`/dev/zero`), a
//! directory or a file larger than the caller's limit is refused before a byte is read.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many links [`real_path`] follows before it gives up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Whether [`replace`] makes the new file survive a power cut (fsync of the file and the
/// directory) or only a crash of the process (the rename alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file before the rename and the directory after it.
    Synced,
    /// Rename only: for records whose loss costs nothing another file does not hold.
    RenameOnly,
}

/// The permissions of the file [`replace`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perms {
    /// 0600 whatever the old file had: it holds keys or node parameters.
    OwnerOnly,
    /// The old file's owner bits, group and other cleared (0600 for a new file): the user's
    /// own file, e.g. a route table, stays as writable to its owner as it was (0400 stays 0400)
    /// and closed to others, as everything in the HA directory is.
    KeepOwnerBits,
}

/// `path` with every symlink (of the path itself, not of its parents) followed to the file it
/// names, which need not exist yet.
pub fn real_path(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other(format!(
        "{}: more than {MAX_LINKS} symbolic links",
        path.display()
    )))
}

/// The prefix of [`replace`]'s temp files for `file`: `.<name>.`.
fn temp_prefix(file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Replaces `path` (its target, when it is a symlink) with `bytes` atomically: a temp file in
/// the same directory, written, synced, renamed over it, the directory synced. The new file has
/// the permissions `perms` says; a new file is owner-only (0600).
pub fn replace(path: &Path, bytes: &[u8], perms: Perms, durability: Durability) -> io::Result<()> {
    let target = real_path(path)?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mode = match (perms, std::fs::metadata(&target)) {
        (Perms::OwnerOnly, _) => 0o600,
        (Perms::KeepOwnerBits, Ok(meta)) => meta.mode() & 0o700,
        (Perms::KeepOwnerBits, Err(e)) if e.kind() == io::ErrorKind::NotFound => 0o600,
        (Perms::KeepOwnerBits, Err(e)) => return Err(e),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&temp_prefix(&target))
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    if mode != 0o600 {
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    if durability == Durability::Synced {
        tmp.as_file().sync_all()?;
    }
    tmp.persist(&target).map_err(|e| e.error)?;
    if durability == Durability::Synced {
        File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes the temp files an interrupted [`replace`] of `path` left (`.<name>.XXXXXX` beside
/// its target); returns their names. Only the process that owns `path` may call it (the
/// server, which holds the pid lock, for `node_file`).
pub fn remove_leftovers(path: &Path) -> Vec<String> {
    let Ok(target) = real_path(path) else {
        return Vec::new();
    };
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = temp_prefix(&target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if regular && name.starts_with(&prefix) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// How [`open_owner_only`] opens its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenFor {
    /// Append, creating it if missing (logs).
    Append,
    /// A new file; fails if the name exists (event logs).
    CreateNew,
    /// Write from the start, creating or emptying it (a server's start-up output).
    Truncate,
    /// Read and write, creating it if missing, keeping what it holds (the pid file).
    ReadWrite,
}

/// Opens `path` as [`OpenFor`] says; a file it creates is owner-only (0600): node parameters,
/// app keys, event logs and the log are the HA user's alone.
pub fn open_owner_only(path: &Path, how: OpenFor) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    match how {
        OpenFor::Append => options.create(true).append(true),
        OpenFor::CreateNew => options.write(true).create_new(true),
        OpenFor::Truncate => options.write(true).create(true).truncate(true),
        OpenFor::ReadWrite => options.read(true).write(true).create(true).truncate(false),
    };
    options.open(path)
}

/// Why [`read_regular`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    /// The path names nothing (the system's words).
    Missing(io::Error),
    /// Not a regular file: what it is (`a FIFO`, `a directory`, `a character device`, …).
    NotRegular(&'static str),
    /// Larger than the caller's limit, in bytes.
    TooLarge { limit: u64 },
    /// Any other error from the system.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing(e) => write!(f, "cannot be read: {e}"),
            ReadError::NotRegular(what) => write!(f, "is {what}, not a regular file"),
            ReadError::TooLarge { limit } => write!(f, "is larger than {}", size(*limit)),
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// `8 MiB`, `512 KiB`, `100 bytes`.
pub fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}

/// What a file type is, in words: `a FIFO`, `a directory`.
pub fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "not a file"
    }
}

/// The whole of `path` (following links), if it is a regular file of at most `limit` bytes.
/// The open does not block (`O_NONBLOCK`: a FIFO with no writer would hold it forever) and the
/// type and size are checked on the open file before anything is read; at most `limit + 1`
/// bytes are ever read, so a file that grows meanwhile is refused too.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing(e),
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular(kind_of(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_the_mode_and_writes_through_a_symlink() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("t1.json");
        replace(&file, b"one", Perms::KeepOwnerBits, Durability::Synced).expect("new file");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").mode() & 0o777;
        assert_eq!(mode(&file), 0o600, "a new file is owner-only");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        replace(&file, b"two", Perms::KeepOwnerBits, Durability::RenameOnly).expect("replace");
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        assert_eq!(mode(&file), 0o400, "the old file's mode is kept");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        replace(&file, b"two", Perms::KeepOwnerBits, Durability::Synced).expect("replace");
        assert_eq!(mode(&file), 0o600, "closed to group and others");
        replace(&file, b"two", Perms::OwnerOnly, Durability::Synced).expect("replace");
        assert_eq!(mode(&file), 0o600);

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink("t1.json", &link).expect("symlink");
        replace(&link, b"three", Perms::OwnerOnly, Durability::Synced).expect("through the link");
        assert!(std::fs::symlink_metadata(&link)
            .expect("lstat")
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&file).expect("read"), b"three");
        assert_eq!(remove_leftovers(&link), Vec::<String>::new());
    }

    #[test]
    fn leftovers_of_an_interrupted_replace_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("node_file");
        for name in [".node_file.Ab12Cd", "node_file.orig", ".other.x1"] {
            std::fs::write(tmp.path().join(name), "").expect("write");
        }
        assert_eq!(remove_leftovers(&file), vec![".node_file.Ab12Cd"]);
        assert!(tmp.path().join("node_file.orig").exists());
        assert!(tmp.path().join(".other.x1").exists());
    }

    #[test]
    fn read_regular_refuses_fifos_devices_directories_and_big_files_at_once() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("a.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let started = std::time::Instant::now();
        let why = |p: &Path, limit| read_regular(p, limit).expect_err("refused").to_string();
        assert_eq!(why(&fifo, 10), "is a FIFO, not a regular file");
        assert_eq!(
            why(Path::new("/dev/zero"), 10),
            "is a character device, not a regular file"
        );
        assert_eq!(why(tmp.path(), 10), "is a directory, not a regular file");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let big = tmp.path().join("big");
        std::fs::write(&big, [b'x'; 11]).expect("write");
        assert_eq!(why(&big, 10), "is larger than 10 bytes");
        assert_eq!(read_regular(&big, 11).expect("fits"), [b'x'; 11]);
        assert!(matches!(
            read_regular(&tmp.path().join("none"), 10),
            Err(ReadError::Missing(_))
        ));
        assert_eq!(size(8 * 1024 * 1024), "8 MiB");
    }
}
