//! The server under every loopback fake: tiny_http on a free 127.0.0.1 port, one thread serving
//! requests until the fake is dropped. Each fake uses it as `super::loopback`.

use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Request, Server};

pub struct Loopback {
    server: Arc<Server>,
    thread: Option<JoinHandle<()>>,
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
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Hands every request, in order, to `handle` on one thread.
    pub fn serve(mut self, mut handle: impl FnMut(Request) + Send + 'static) -> Loopback {
        let server = Arc::clone(&self.server);
        self.thread = Some(std::thread::spawn(move || {
            for request in server.incoming_requests() {
                handle(request);
            }
        }));
        self
    }
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
    }
}
