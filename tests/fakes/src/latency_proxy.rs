//! A loopback TCP proxy that puts a region's latency in front of a loopback fake or emulator.
//!
//! On 127.0.0.1 every cloud call costs a few milliseconds, so round trips are almost free and
//! code that makes too many of them looks fast. Each [`Front`] listens on its own 127.0.0.1 port
//! and forwards to one upstream (moto, a fake); every HTTP request it carries is held for the
//! [`Latency`]'s delay after it arrived, then sent on. Responses are copied back as they come.
//! The delay is per request, not per connection: the proxy reads each request's head and body
//! (`Content-Length` or `chunked`) to find where it ends, so a keep-alive connection carrying
//! several requests pays the delay once for each. Connection set-up is not delayed (a real region
//! also pays TCP and TLS handshakes per new connection); new connections are counted instead.
//!
//! Every request is recorded with its upstream's name and a [`Kind`] (cloud API, operation poll,
//! metadata service, login server) chosen by the front's classifier from method and path, so a
//! benchmark can say how many round trips of each kind an event cost. A form body's `Action=`
//! is recorded too, so that EC2 calls can be counted by operation.
//!
//! Used by `examples/cloud_latency_bench.rs` and (at no delay, as a counter) by
//! `examples/aws_moto_bench.rs`; checked by `tests/latency_proxy.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a request is for, as far as round trips to a far-away service go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A cloud API call that reads or writes (EC2, ARM, Compute).
    Api,
    /// A poll of a long-running operation (ARM `operations/…`, Compute `…/wait`).
    Poll,
    /// A metadata service (AWS IMDS, Azure IMDS, GCE metadata server).
    Metadata,
    /// A login / OAuth token server (Azure AD, Google OAuth).
    Login,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Api, Kind::Poll, Kind::Metadata, Kind::Login];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Api => "API",
            Kind::Poll => "poll",
            Kind::Metadata => "metadata",
            Kind::Login => "login",
        }
    }
}

/// Chooses a request's [`Kind`] from its method and target (path and query).
pub type Classify = fn(method: &str, target: &str) -> Kind;

/// One request the proxy carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The name of the front it came through (its upstream).
    pub upstream: &'static str,
    pub kind: Kind,
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// The `Action=` of a form-encoded body (the EC2 Query API names its operation there).
    pub action: Option<String>,
}

/// Requests and new connections since the last [`Latency::take`].
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub requests: Vec<Seen>,
    /// New client connections, by front name.
    pub connections: BTreeMap<&'static str, u32>,
}

impl Tally {
    pub fn count(&self, kind: Kind) -> usize {
        self.requests.iter().filter(|r| r.kind == kind).count()
    }

    pub fn total(&self) -> usize {
        self.requests.len()
    }

    pub fn connections(&self) -> u32 {
        self.connections.values().sum()
    }

    /// Adds `other`'s requests and connections to this tally.
    pub fn add(&mut self, other: &Tally) {
        self.requests.extend(other.requests.iter().cloned());
        for (name, n) in &other.connections {
            *self.connections.entry(name).or_default() += n;
        }
    }
}

struct Shared {
    delay_micros: AtomicU64,
    tally: Mutex<Tally>,
}

/// The delay every front applies and the record of what they carried. Cloning shares both.
#[derive(Clone)]
pub struct Latency {
    shared: Arc<Shared>,
}

/// One proxy port in front of one upstream. Its threads live as long as the process.
#[derive(Debug, Clone)]
pub struct Front {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub host: String,
}

impl Latency {
    pub fn new(delay: Duration) -> Latency {
        let latency = Latency {
            shared: Arc::new(Shared {
                delay_micros: AtomicU64::new(0),
                tally: Mutex::new(Tally::default()),
            }),
        };
        latency.set_delay(delay);
        latency
    }

    /// Changes the delay for requests that arrive from now on (0 for fast set-up).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_micros.store(micros, Ordering::Relaxed);
    }

    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.shared.delay_micros.load(Ordering::Relaxed))
    }

    /// What was carried since the last call.
    pub fn take(&self) -> Tally {
        std::mem::take(&mut *self.shared.tally.lock().expect("tally"))
    }

    /// Starts a front on a free 127.0.0.1 port forwarding to `upstream` (`http://127.0.0.1:P`
    /// or `127.0.0.1:P`), recording requests under `name` with the kind `classify` gives.
    pub fn front(&self, name: &'static str, upstream: &str, classify: Classify) -> Front {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        assert!(
            upstream.starts_with("127.0.0.1:"),
            "latency proxy: upstream {upstream} is not on 127.0.0.1"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind latency proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        let shared = Arc::clone(&self.shared);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, shared) = (upstream.clone(), Arc::clone(&shared));
                std::thread::spawn(move || {
                    if let Err(e) = relay(client, &upstream, name, classify, &shared) {
                        if !quiet(&e) {
                            eprintln!("latency proxy {name}: {e}");
                        }
                    }
                });
            }
        });
        Front {
            url: format!("http://{host}"),
            host,
        }
    }
}

/// Errors that are only a peer hanging up mid-way.
fn quiet(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof
    )
}

/// Carries one client connection: requests up (each held for the delay), responses down.
fn relay(
    client: TcpStream,
    upstream: &str,
    name: &'static str,
    classify: Classify,
    shared: &Shared,
) -> std::io::Result<()> {
    *shared
        .tally
        .lock()
        .expect("tally")
        .connections
        .entry(name)
        .or_default() += 1;
    let server = TcpStream::connect(upstream)?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut down_from, mut down_to) = (server.try_clone()?, client.try_clone()?);
    let down = std::thread::spawn(move || {
        let _ = std::io::copy(&mut down_from, &mut down_to);
        let _ = down_to.shutdown(Shutdown::Write);
    });
    let mut up_to = server;
    let mut reader = BufReader::new(client);
    let result = loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        let delay = Duration::from_micros(shared.delay_micros.load(Ordering::Relaxed));
        shared.tally.lock().expect("tally").requests.push(Seen {
            upstream: name,
            kind: classify(&request.method, &request.target),
            action: request.action,
            method: request.method,
            target: request.target,
        });
        let due = request.arrived + delay;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if let Err(e) = up_to.write_all(&request.bytes) {
            break Err(e);
        }
    };
    let _ = up_to.shutdown(Shutdown::Write);
    let _ = down.join();
    result
}

/// One HTTP/1.1 request exactly as received.
struct Request {
    method: String,
    target: String,
    /// The `Action=` field of its body, if any.
    action: Option<String>,
    /// Head and body, byte for byte.
    bytes: Vec<u8>,
    /// When its first line had arrived.
    arrived: Instant,
}

/// The longest request head accepted (the proxy only carries what the providers send).
const MAX_HEAD: usize = 64 * 1024;

/// Reads the next request on the connection; `None` at a clean end of the connection.
fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut bytes = Vec::new();
    // The request line (empty lines between requests are allowed by RFC 9112).
    let line = loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break line;
        }
    };
    let arrived = Instant::now();
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line {line:?}")));
    };
    let (method, target) = (method.to_string(), target.to_string());
    bytes.extend_from_slice(line.as_bytes());
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(line.as_bytes());
        if bytes.len() > MAX_HEAD {
            return Err(invalid(format!("request head over {MAX_HEAD} bytes")));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((field, value)) = line.split_once(':') {
            let (field, value) = (field.trim(), value.trim());
            if field.eq_ignore_ascii_case("content-length") {
                length = value
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
            } else if field.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }
    let body_start = bytes.len();
    if chunked {
        read_chunked(reader, &mut bytes)?;
    } else {
        bytes.resize(body_start + length, 0);
        reader.read_exact(&mut bytes[body_start..])?;
    }
    let action = String::from_utf8_lossy(&bytes[body_start..])
        .split('&')
        .find_map(|field| field.strip_prefix("Action="))
        .map(str::to_string);
    Ok(Some(Request {
        method,
        target,
        action,
        bytes,
        arrived,
    }))
}

/// Appends a `chunked` body, trailers and all, to `bytes`.
fn read_chunked(reader: &mut impl BufRead, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(line.as_bytes());
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad chunk size {size_text:?}"),
            )
        })?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                bytes.extend_from_slice(line.as_bytes());
                if line == "\r\n" || line == "\n" {
                    return Ok(());
                }
            }
        }
        // The chunk and its CRLF.
        let start = bytes.len();
        bytes.resize(start + size + 2, 0);
        reader.read_exact(&mut bytes[start..])?;
    }
}
