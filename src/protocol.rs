//! The wire between client commands and the server.
//!
//! A request is one fixed-size frame written to `ha_server.fifo`. Writes of at most PIPE_BUF
//! bytes to a FIFO are atomic, so frames from concurrent clients never interleave:
//!
//! ```text
//! request frame, exactly FRAME (4096) bytes
//! +-------+---------+----------------------------------------+-------------+
//! | CSRH  | version | bincode(reply_to, deadline_ms, command) | zero padding|
//! | 4 B   | u16 LE  | fixed-int, little-endian, limit 4096    |             |
//! +-------+---------+----------------------------------------+-------------+
//! ```
//!
//! `deadline_ms` is when the client gives up waiting, on the system-wide monotonic clock
//! (`CLOCK_MONOTONIC`, the same for every process on the machine). A frame read after it is
//! dropped and counted: a `create_node` that already printed "no server answered" must not
//! create the node when a stopped server resumes.
//!
//! The reply goes to the client's own FIFO (`replies/<name>`), which has one writer, so it may
//! be longer than a frame (`show_node -i all` with 1023 nodes):
//!
//! ```text
//! reply: u32 LE length | bincode(Response), at most MAX_REPLY bytes
//! ```

use std::time::Duration;

use bincode::config::{self, Configuration, Fixint, Limit, LittleEndian};
use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::node::{LastEvent, Node, NodeIndex, Param, Provider};

/// Size of every request frame: PIPE_BUF, the largest atomic FIFO write.
pub const FRAME: usize = 4096;
/// First bytes of every frame; anything else on the FIFO is garbage.
pub const MAGIC: [u8; 4] = *b"CSRH";
/// Bumped whenever `Request` changes shape; old clients get a clear refusal.
pub const VERSION: u16 = 3;
/// Largest reply accepted by a client (1023 nodes shown take well under 1 MiB).
pub const MAX_REPLY: usize = 16 << 20;

type FrameConfig = Configuration<LittleEndian, Fixint, Limit<FRAME>>;
type ReplyConfig = Configuration<LittleEndian, Fixint, Limit<MAX_REPLY>>;

fn frame_config() -> FrameConfig {
    config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<FRAME>()
}

fn reply_config() -> ReplyConfig {
    config::standard()
        .with_fixed_int_encoding()
        .with_little_endian()
        .with_limit::<MAX_REPLY>()
}

/// Which nodes a `show_node` or `node_event` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    One(NodeIndex),
    All,
}

/// A node and parameter values for it, as `create_node` and `set_params` send them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeParams {
    pub index: NodeIndex,
    /// The cloud the client is configured for; the node must be of it.
    pub provider: Provider,
    pub params: Vec<(Param, String)>,
}

/// What a client asks of the server; every value was parsed and validated by the client and is
/// validated again by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Ping,
    Stop,
    /// Create node `index`, or update it if it exists.
    CreateNode(NodeParams),
    /// Set some parameters of an existing node.
    SetParams(NodeParams),
    ClearParams {
        index: NodeIndex,
        params: Vec<Param>,
    },
    DeleteNode {
        index: NodeIndex,
    },
    ShowNode {
        target: Target,
    },
    NodeEvent {
        target: Target,
        max: Option<NodeIndex>,
        event: EventKind,
        /// `--dry-run`: plan and prove write permission, write nothing.
        dry_run: bool,
    },
    /// `ha_api -c status`: the whole service in one answer.
    Status,
}

/// One request frame's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// File name of the client's reply FIFO inside `replies/` (no path).
    pub reply_to: String,
    /// When the client stops waiting, in [`monotonic_ms`]; the server applies nothing later.
    pub deadline_ms: u64,
    pub command: Command,
}

impl Request {
    /// A request whose client waits `wait` from now.
    pub fn new(reply_to: impl Into<String>, command: Command, wait: Duration) -> Request {
        Request {
            reply_to: reply_to.into(),
            deadline_ms: monotonic_ms().saturating_add(wait.as_millis() as u64),
            command,
        }
    }

    /// Time left before the client gives up; zero once it has.
    pub fn time_left(&self) -> Duration {
        Duration::from_millis(self.deadline_ms.saturating_sub(monotonic_ms()))
    }
}

/// Milliseconds on `CLOCK_MONOTONIC`: comparable between processes on one machine, and never
/// stepped by NTP or a user setting the date.
pub fn monotonic_ms() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| (t.tv_sec() as u64).saturating_mul(1000) + (t.tv_nsec() as u64) / 1_000_000)
        .unwrap_or(0)
}

/// A node as `show_node` receives it: secrets already masked by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: Node,
    pub last_event: Option<LastEvent>,
    /// The node's last dry run.
    pub last_check: Option<LastEvent>,
    /// Which credential the node signs in with (`ha_api -c status`, Azure nodes): ids, never
    /// a key. `None` in `show_node`.
    pub credential: Option<String>,
}

/// How a request (or one node of it) went. Printed as the original's `200: `, `199: ` and
/// `400: ` prefixes, and only when printed; everywhere else it is this type. Ordered by
/// severity, so the worst of several is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Done (`200`).
    Ok,
    /// Done, with something the user should look at (`199`).
    Warning,
    /// Not done (`400`).
    Failed,
}

impl Status {
    /// The original's code: 200, 199 or 400.
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::Warning => 199,
            Status::Failed => 400,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// One line of an answer: a status line (`200: …`) or a plain one (a node's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub status: Option<Status>,
    pub text: String,
}

impl Line {
    pub fn status(status: Status, text: impl Into<String>) -> Line {
        Line {
            status: Some(status),
            text: text.into(),
        }
    }

    pub fn plain(text: impl Into<String>) -> Line {
        Line {
            status: None,
            text: text.into(),
        }
    }
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}: {}", self.text),
            None => f.write_str(&self.text),
        }
    }
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's outcome: the worst of its lines' unless set otherwise.
    pub status: Status,
    pub lines: Vec<Line>,
    /// Nodes, for `show_node` (rendered as text or `--json` by the client).
    pub nodes: Vec<NodeView>,
    /// The service's state, for `ha_api -c status`.
    pub service: Option<Box<crate::cmd::status::ServiceView>>,
}

impl Response {
    /// An answer of one status line.
    pub fn new(status: Status, text: impl Into<String>) -> Response {
        Response::of(vec![Line::status(status, text)])
    }
    pub fn ok(text: impl Into<String>) -> Response {
        Response::new(Status::Ok, text)
    }
    pub fn bad(text: impl Into<String>) -> Response {
        Response::new(Status::Failed, text)
    }

    /// An answer of these lines; its status is the worst of theirs (`Ok` if none has one).
    pub fn of(lines: Vec<Line>) -> Response {
        let status = lines
            .iter()
            .filter_map(|l| l.status)
            .max()
            .unwrap_or(Status::Ok);
        Response {
            status,
            lines,
            nodes: Vec::new(),
            service: None,
        }
    }

    /// Appends `text`'s lines as plain lines (a node's configuration under its headline).
    pub fn with_body(mut self, text: &str) -> Response {
        self.lines.extend(text.lines().map(Line::plain));
        self
    }

    pub fn succeeded(&self) -> bool {
        self.status != Status::Failed
    }

    /// The first line's text, without its status: what `ha_api` quotes of a ping.
    pub fn headline(&self) -> &str {
        self.lines.first().map_or("", |l| l.text.as_str())
    }

    /// The lines as printed, each status line behind its `200: `-style prefix.
    pub fn render(&self) -> String {
        self.lines
            .iter()
            .map(Line::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    WrongSize(usize),
    BadMagic,
    WrongVersion(u16),
    /// The content did not decode (truncated, corrupt or hostile lengths).
    Corrupt(String),
    /// Bytes after the encoded request were not zero: two frames run together.
    TrailingBytes,
    /// A request too big to fit a frame (client side).
    TooLarge,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::WrongSize(n) => write!(f, "frame of {n} bytes, expected {FRAME}"),
            FrameError::BadMagic => f.write_str("frame does not start with CSRH"),
            FrameError::WrongVersion(v) => {
                write!(f, "frame version {v}, this server speaks {VERSION}: client and server binaries differ")
            }
            FrameError::Corrupt(e) => write!(f, "frame does not decode: {e}"),
            FrameError::TrailingBytes => f.write_str("frame has bytes after its end"),
            FrameError::TooLarge => write!(
                f,
                "request does not fit in {FRAME} bytes; shorten the values"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Encodes `request` into one zero-padded frame.
pub fn encode_request(request: &Request) -> Result<Box<[u8; FRAME]>, FrameError> {
    let mut frame = Box::new([0u8; FRAME]);
    frame[..4].copy_from_slice(&MAGIC);
    frame[4..6].copy_from_slice(&VERSION.to_le_bytes());
    bincode::serde::encode_into_slice(request, &mut frame[6..], frame_config())
        .map_err(|_| FrameError::TooLarge)?;
    Ok(frame)
}

/// Decodes exactly one frame; never panics, whatever the bytes.
pub fn decode_request(frame: &[u8]) -> Result<Request, FrameError> {
    if frame.len() != FRAME {
        return Err(FrameError::WrongSize(frame.len()));
    }
    if frame[..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    let version = u16::from_le_bytes([frame[4], frame[5]]);
    if version != VERSION {
        return Err(FrameError::WrongVersion(version));
    }
    let (request, used): (Request, usize) =
        bincode::serde::decode_from_slice(&frame[6..], frame_config())
            .map_err(|e| FrameError::Corrupt(e.to_string()))?;
    if frame[6 + used..].iter().any(|&b| b != 0) {
        return Err(FrameError::TrailingBytes);
    }
    Ok(request)
}

/// Encodes a reply with its length prefix.
pub fn encode_reply(response: &Response) -> Vec<u8> {
    let body = bincode::serde::encode_to_vec(response, reply_config()).unwrap_or_else(|_| {
        let fallback = Response::bad("reply too large to send; ask for fewer nodes");
        bincode::serde::encode_to_vec(&fallback, reply_config()).unwrap_or_default()
    });
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The total reply length announced by the first 4 bytes, once they have arrived.
pub fn reply_len(prefix: &[u8]) -> Option<usize> {
    let bytes: [u8; 4] = prefix.get(..4)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes) as usize)
}

/// Decodes a complete reply (prefix included).
pub fn decode_reply(bytes: &[u8]) -> Result<Response, FrameError> {
    let len =
        reply_len(bytes).ok_or(FrameError::Corrupt("reply shorter than its prefix".into()))?;
    if len > MAX_REPLY || bytes.len() != 4 + len {
        return Err(FrameError::Corrupt(format!(
            "reply of {} bytes announces {len}",
            bytes.len()
        )));
    }
    bincode::serde::decode_from_slice(&bytes[4..], reply_config())
        .map(|(r, _)| r)
        .map_err(|e| FrameError::Corrupt(e.to_string()))
}

/// Splits a stream of request-FIFO bytes into frames, resynchronising on the magic after garbage.
///
/// Every frame is written in one atomic write, but other writers may put anything on the FIFO;
/// bytes that are not a whole valid frame are dropped and counted, never fatal.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    /// Frames (or runs of garbage) refused so far.
    pub bad_frames: u64,
}

impl FrameReader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held while waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drops a partial frame whose rest never came.
    pub fn discard_partial(&mut self) {
        if !self.buf.is_empty() {
            self.buf.clear();
            self.bad_frames += 1;
        }
    }

    /// The next frame: `Some(Ok)` a request, `Some(Err)` a refused frame (already counted),
    /// `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Request, FrameError>> {
        if self.buf.is_empty() {
            return None;
        }
        if !self.buf.starts_with(&MAGIC) {
            let drop = match find_magic(&self.buf[1..]) {
                Some(p) => p + 1,
                // Keep a tail that may be the start of a magic split across two reads.
                None => self.buf.len() - magic_prefix_suffix(&self.buf),
            };
            if drop == 0 {
                return None;
            }
            self.buf.drain(..drop);
            self.bad_frames += 1;
            return Some(Err(FrameError::BadMagic));
        }
        if self.buf.len() < FRAME {
            return None;
        }
        let decoded = decode_request(&self.buf[..FRAME]);
        let consumed = match &decoded {
            Ok(_) => FRAME,
            // A truncated frame followed by a good one: resume at the next magic.
            Err(_) => find_magic(&self.buf[1..]).map(|p| p + 1).unwrap_or(FRAME),
        };
        self.buf.drain(..consumed);
        if decoded.is_err() {
            self.bad_frames += 1;
        }
        Some(decoded)
    }
}

/// Length of the longest tail of `buf` that is a proper prefix of the magic.
fn magic_prefix_suffix(buf: &[u8]) -> usize {
    (1..MAGIC.len())
        .rev()
        .find(|&n| buf.len() >= n && MAGIC.starts_with(&buf[buf.len() - n..]))
        .unwrap_or(0)
}

fn find_magic(haystack: &[u8]) -> Option<usize> {
    haystack.windows(MAGIC.len()).position(|w| w == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(command: Command) -> Request {
        Request::new("123-abc", command, Duration::from_secs(2))
    }

    #[test]
    fn frames_round_trip_and_are_fixed_size() {
        let req = request(Command::ShowNode {
            target: Target::All,
        });
        let frame = encode_request(&req).expect("fits");
        assert_eq!(frame.len(), FRAME);
        assert_eq!(decode_request(&frame[..]), Ok(req));
    }

    #[test]
    fn wrong_version_and_magic_are_refused() {
        let mut frame = encode_request(&request(Command::Ping)).expect("fits");
        frame[4] = 9;
        assert_eq!(decode_request(&frame[..]), Err(FrameError::WrongVersion(9)));
        frame[0] = b'X';
        assert_eq!(decode_request(&frame[..]), Err(FrameError::BadMagic));
    }

    #[test]
    fn reader_resyncs_after_garbage_and_truncation() {
        let good = encode_request(&request(Command::Ping)).expect("fits");
        let mut reader = FrameReader::default();
        reader.push(b"garbage garbage");
        reader.push(&good[..100]); // truncated frame
        reader.push(&good[..]);
        let mut got = Vec::new();
        while let Some(item) = reader.next_frame() {
            got.push(item.is_ok());
        }
        assert_eq!(got.iter().filter(|ok| **ok).count(), 1);
        assert_eq!(reader.pending(), 0);
        assert!(reader.bad_frames >= 2);
    }

    #[test]
    fn oversized_requests_are_refused_by_the_encoder() {
        let params = vec![(Param::AppKey, "x".repeat(5000))];
        let req = request(Command::SetParams(NodeParams {
            index: NodeIndex::new(1).expect("valid"),
            provider: Provider::Azure,
            params,
        }));
        assert_eq!(encode_request(&req).err(), Some(FrameError::TooLarge));
    }
}
