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
//! └── csr_ha.log         server and handler log
//! ```

use std::path::{Path, PathBuf};

use crate::node::Provider;

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
    pub fn node_file(&self) -> PathBuf {
        self.root.join("node_file")
    }
    pub fn node_file_orig(&self) -> PathBuf {
        self.root.join("node_file.orig")
    }
    pub fn cloud_file(&self) -> PathBuf {
        self.root.join("cloud")
    }
    pub fn request_fifo(&self) -> PathBuf {
        self.root.join("ha_server.fifo")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("ha_server.pid")
    }
    pub fn replies(&self) -> PathBuf {
        self.root.join("replies")
    }
    pub fn events(&self) -> PathBuf {
        self.root.join("events")
    }
    pub fn route_tables(&self) -> PathBuf {
        self.root.join("route_tables")
    }
    pub fn log_file(&self) -> PathBuf {
        self.root.join("csr_ha.log")
    }

    /// Creates the directory tree with owner-only permissions where missing.
    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        for dir in [self.root.clone(), self.replies(), self.events()] {
            builder.create(&dir).map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Ok(())
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
