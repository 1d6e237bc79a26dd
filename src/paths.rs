//! The HA directory and everything that lives in it.
//!
//! ```text
//! $CSR_HA_DIR (default $HOME/cloud/HA)
//! ├── node_file          the node database, one node per line
//! ├── node_file.orig     the original Python package's node_file, kept after import
//! ├── cloud              the configured provider: aws | azure | gcp | file
//! ├── ha_server.fifo     the request FIFO
//! ├── ha_server.pid      pid file, locked by the running server
//! ├── replies/           one reply FIFO per waiting client
//! ├── events/            one log file per node and event (at most 512)
//! ├── route_tables/      the `file` provider's tables, <name>.json
//! ├── last_events.json   each node's last event, for show_node across restarts
//! ├── last_checks.json   each node's last dry run (`lastCheck`), likewise
//! └── csr_ha.log         server and handler log
//! ```

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::node::Provider;

/// `name => "file"` becomes `pub fn name(&self) -> PathBuf`, the file's path in the HA directory
/// (the tree drawn at the top of this module).
macro_rules! files {
    ($($name:ident => $file:literal,)*) => {
        $(
            #[doc = concat!("`<HA dir>/", $file, "`")]
            pub fn $name(&self) -> PathBuf {
                self.root.join($file)
            }
        )*
    };
}

/// Where everything lives, resolved once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaDir {
    root: PathBuf,
}

impl HaDir {
    /// `$CSR_HA_DIR`, else `$HOME/cloud/HA` (the original layout).
    pub fn from_env() -> HaDir {
        let root = match std::env::var_os("CSR_HA_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
                PathBuf::from(home).join("cloud").join("HA")
            }
        };
        HaDir { root }
    }

    pub fn new(root: impl Into<PathBuf>) -> HaDir {
        HaDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    files! {
        node_file => "node_file",
        node_file_orig => "node_file.orig",
        cloud_file => "cloud",
        request_fifo => "ha_server.fifo",
        pid_file => "ha_server.pid",
        replies => "replies",
        events => "events",
        route_tables => "route_tables",
        last_events_file => "last_events.json",
        last_checks_file => "last_checks.json",
        log_file => "csr_ha.log",
    }

    /// Creates the directory tree with owner-only permissions where missing, and closes what
    /// exists to group and others: node parameters, event logs and keys are the HA user's alone
    /// (the original left `events/` at 0777).
    pub fn create(&self) -> std::io::Result<()> {
        for dir in [self.root.clone(), self.events()] {
            owner_only_dir(&dir)?;
        }
        self.tighten();
        self.create_replies()
    }

    /// Removes group and other permissions from the HA directory, `events/`, `route_tables/`
    /// and the files directly in them. Links are left alone (`replies` points at tmpfs).
    pub fn tighten(&self) {
        for dir in [self.root.clone(), self.events(), self.route_tables()] {
            owner_only(&dir);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file() || t.is_fifo()) {
                    owner_only(&entry.path());
                }
            }
        }
    }

    /// `replies/` holds one FIFO per request, created and removed at request rate. On a disk
    /// file system each create costs an inode allocation (ext4 avoids recently freed inodes), so
    /// where a tmpfs is at hand (`$XDG_RUNTIME_DIR`, else `/dev/shm`) `replies` is a symlink to
    /// an owner-only directory there. `CSR_HA_REPLIES_TMPFS=0` keeps a plain directory, and an
    /// existing plain directory is kept as it is.
    pub fn create_replies(&self) -> std::io::Result<()> {
        let link = self.replies();
        match std::fs::symlink_metadata(&link) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&link)?;
                return owner_only_dir(&target).and_then(|_| check_ours(&target));
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} exists and is not a directory; remove it",
                    link.display()
                )))
            }
            Err(_) => {}
        }
        if let Some(target) = self.runtime_replies() {
            if owner_only_dir(&target)
                .and_then(|_| check_ours(&target))
                .is_ok()
                && std::os::unix::fs::symlink(&target, &link).is_ok()
            {
                return Ok(());
            }
        }
        owner_only_dir(&link)
    }

    /// Cached cloud credentials (`cloud::token_cache`), shared by the handler processes: beside
    /// the tmpfs `replies` directory (`<tmpfs>/csr_ha-<uid>-<hash>.credentials`) so they never
    /// reach a disk, else `credential_cache/` here (`CSR_HA_REPLIES_TMPFS=0`, no tmpfs).
    pub fn credential_cache(&self) -> PathBuf {
        match self.runtime_replies() {
            Some(replies) => replies.with_extension("credentials"),
            None => self.root.join("credential_cache"),
        }
    }

    /// `<tmpfs>/csr_ha-<uid>-<hash of this HA dir>`, when a tmpfs directory is available and
    /// `CSR_HA_REPLIES_TMPFS` is not `0`.
    fn runtime_replies(&self) -> Option<PathBuf> {
        if std::env::var("CSR_HA_REPLIES_TMPFS").is_ok_and(|v| v.trim() == "0") {
            return None;
        }
        use sha2::Digest;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))?;
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
        let uid = nix::unistd::getuid();
        Some(base.join(format!("csr_ha-{uid}-{}", hex::encode(&digest[..6]))))
    }

    /// Removes a tmpfs `replies` directory and its link when the server stops (clients then
    /// see that no server runs); a plain directory stays.
    pub fn remove_runtime_replies(&self) {
        let link = self.replies();
        let is_link = std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink());
        if let (true, Ok(target)) = (is_link, std::fs::read_link(&link)) {
            // FIFOs of clients still waiting: with no server they would wait in vain anyway.
            for entry in std::fs::read_dir(&target).into_iter().flatten().flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
            if std::fs::remove_dir(&target).is_ok() {
                let _ = std::fs::remove_file(&link);
            }
        }
    }

    /// `$CSR_HA_CLOUD`, else the word in `<dir>/cloud`, else `file`.
    pub fn provider(&self) -> Result<Provider, String> {
        if let Ok(word) = std::env::var("CSR_HA_CLOUD") {
            if !word.trim().is_empty() {
                return word.parse().map_err(|_| {
                    format!("CSR_HA_CLOUD={word:?} is not one of aws, azure, gcp, file")
                });
            }
        }
        match std::fs::read_to_string(self.cloud_file()) {
            Ok(word) if !word.trim().is_empty() => word.parse().map_err(|_| {
                format!(
                    "{} holds {:?}; expected one of aws, azure, gcp, file",
                    self.cloud_file().display(),
                    word.trim()
                )
            }),
            _ => Ok(Provider::File),
        }
    }
}

/// Clears the group and other bits of `path` (not following a link); errors are logged.
pub fn owner_only(path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() || meta.mode() & 0o077 == 0 {
        return;
    }
    let mode = meta.mode() & 0o7700;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        log::warn!("cannot make {} owner-only: {e}", path.display());
    }
}

/// Creates `dir` (and its parents) with mode 0700 if missing.
pub fn owner_only_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))
}

/// A shared tmpfs is writable by everyone: use a directory there only if it is a real
/// directory (not a link), ours, and closed to others.
pub fn check_ours(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir)?;
    let ours =
        meta.is_dir() && meta.uid() == nix::unistd::getuid().as_raw() && meta.mode() & 0o077 == 0;
    if ours {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{} is not a directory of this user with mode 0700",
            dir.display()
        )))
    }
}
