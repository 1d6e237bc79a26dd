//! The server under every loopback fake: tiny_http on a free 127.0.0.1 port, one thread serving
//! requests until the fake is dropped. Each fake uses it as `crate::loopback`.
//!
//! A fake that fails (its handler panics: a description missing, a bug in the fake) must fail
//! its test at once with the cause, not leave the client retrying a 500 until its deadline: the
//! panic is caught, every later request is answered `400 FakeFailed: <cause>` (permanent for
//! every cloud's client), and dropping the fake panics with the cause.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tiny_http::{Request, Response, Server};

pub struct Loopback {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
    /// Why the handler panicked, once it has.
    failed: Arc<Mutex<Option<String>>>,
    /// The bound port; `url` is `http://127.0.0.1:<port>`.
    pub port: u16,
    pub url: String,
}

impl Loopback {
    /// Binds a free port; nothing is served until [`Loopback::serve`].
    pub fn bind() -> Loopback {
        let server = Arc::new(Server::http("127.0.0.1:0").expect("bind a loopback port"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        Loopback {
            server,
            thread: None,
            failed: Arc::default(),
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Hands every request, in order, to `handle` on one thread.
    pub fn serve(mut self, mut handle: impl FnMut(Request) + Send + 'static) -> Loopback {
        let server = Arc::clone(&self.server);
        let failed = Arc::clone(&self.failed);
        self.thread = Some(std::thread::spawn(move || {
            for request in server.incoming_requests() {
                if let Some(cause) = failed.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                    let body =
                        format!(r#"{{"error":{{"code":"FakeFailed","message":"{cause}"}}}}"#);
                    let _ = request.respond(Response::from_string(body).with_status_code(400));
                    continue;
                }
                let run = std::panic::catch_unwind(AssertUnwindSafe(|| handle(request)));
                if let Err(panic) = run {
                    let cause = panic_message(&panic).replace(['"', '\\'], "'");
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(cause);
                }
            }
        }));
        self
    }

    /// Why the fake's handler failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "the fake's handler panicked".to_string())
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // Keep the port bound until the test process exits: the providers cache tokens per
        // process by endpoint URL, so a later fake handed the same port would otherwise be sent
        // this fake's cached token and see an extra 401 and retry.
        std::mem::forget(Arc::clone(&self.server));
        if let Some(cause) = self.failure() {
            if !std::thread::panicking() {
                panic!("the loopback fake failed: {cause}");
            }
        }
    }
}

/// A request body in `application/x-www-form-urlencoded`, or a query string, as a map.
pub fn form(text: &str) -> BTreeMap<String, String> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A 127.0.0.1 port nothing listens on (bound, then released): an unreachable endpoint.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}
