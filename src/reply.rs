//! The server's end of a client's reply FIFO.
//!
//! A request is applied only after its client's reply FIFO has been opened for writing: a FIFO
//! opens for writing only while a reader holds it, so a client that gave up (its FIFO removed)
//! or was killed (no reader) is never acted for. The open FIFO is kept until the reply is
//! written, also while an event's handlers run.
//!
//! ```text
//! replies/<name>  open O_WRONLY|O_NONBLOCK|O_NOFOLLOW, must be a FIFO
//!   ENOENT: the client removed it (gave up)      ENXIO: no reader (client killed)
//! ```

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::paths::HaDir;
use crate::protocol::{self, Response};

/// A client gets this long to read its reply before it is dropped.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(1);

/// A client still waiting for its answer, with its reply FIFO open.
#[derive(Debug)]
pub struct Client {
    pub name: String,
    file: File,
}

/// Why a client cannot be answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Gone {
    /// The name is not a plain file name inside `replies/`.
    BadName,
    /// Its FIFO is removed or has no reader: the client has given up or died.
    Left,
    /// Something else is wrong with the path (not a FIFO, permissions).
    Refused,
}

impl Client {
    /// Opens `replies/<name>`, only if it is a plain name of a FIFO a reader holds open.
    pub fn open(dir: &HaDir, name: &str) -> Result<Client, Gone> {
        let plain = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !name.starts_with('.');
        if !plain {
            log::warn!("refused reply FIFO name {name:?}: not a plain file name");
            return Err(Gone::BadName);
        }
        let path = dir.replies().join(name);
        let flags = OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = match nix::fcntl::open(&path, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::ENXIO | Errno::ENOENT) => return Err(Gone::Left),
            Err(e) => {
                log::warn!("cannot open reply FIFO {}: {e}", path.display());
                return Err(Gone::Refused);
            }
        };
        match file.metadata() {
            Ok(meta) if meta.file_type().is_fifo() => Ok(Client {
                name: name.to_string(),
                file,
            }),
            _ => {
                log::warn!("refused reply path {}: not a FIFO", path.display());
                Err(Gone::Refused)
            }
        }
    }

    /// Starts writing `response`; the caller finishes it with [`Outgoing::write_some`].
    pub fn answer(self, response: &Response) -> Outgoing {
        Outgoing {
            client: self,
            data: protocol::encode_reply(response),
            written: 0,
            deadline: Instant::now() + REPLY_DEADLINE,
        }
    }
}

/// A reply being written to a client that may read slowly.
#[derive(Debug)]
pub struct Outgoing {
    pub client: Client,
    data: Vec<u8>,
    written: usize,
    pub deadline: Instant,
}

impl Outgoing {
    pub fn file(&self) -> &File {
        &self.client.file
    }

    pub fn done(&self) -> bool {
        self.written >= self.data.len()
    }

    /// Writes what the FIFO takes now; `true` once everything is written or the client is gone.
    pub fn write_some(&mut self) -> bool {
        while self.written < self.data.len() {
            match (&self.client.file).write(&self.data[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("reply to {} dropped: {e}", self.client.name);
                    self.written = self.data.len();
                }
            }
        }
        true
    }
}
