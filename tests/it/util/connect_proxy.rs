//! A small HTTP proxy on loopback that records what it was asked: `CONNECT host:port` tunnels
//! (what clients send for HTTPS, and what ureq sends for every URL) and plain `GET
//! http://host/…` requests. It only ever connects to 127.0.0.1, so a test that sets
//! `HTTPS_PROXY` to it cannot reach anything else through it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct ConnectProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let log = Arc::clone(&log);
                std::thread::spawn(move || {
                    let _ = serve(client, &log);
                });
            }
        });
        ConnectProxy { url, seen }
    }

    /// Every request line the proxy received, in order (`CONNECT 127.0.0.1:4431 HTTP/1.1`).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("proxy log").clone()
    }
}

/// The port of a URL or `host:port`.
pub fn port_of(url: &str) -> u16 {
    let authority = url.split("://").last().unwrap_or(url);
    let authority = authority.split('/').next().unwrap_or(authority);
    authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

fn serve(client: TcpStream, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let request_line = request_line.trim_end().to_string();
    log.lock().expect("proxy log").push(request_line.clone());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let mut words = request_line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut client = client;
    let authority = match method {
        "CONNECT" => target.to_string(),
        _ => target
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string(),
    };
    if !authority.starts_with("127.0.0.1:") {
        client.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    }
    let mut upstream = TcpStream::connect(&authority)?;
    if method == "CONNECT" {
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    } else {
        // Origin form for the server: `GET /path HTTP/1.1`.
        let path = target
            .trim_start_matches("http://")
            .trim_start_matches(authority.as_str());
        let version = words.next().unwrap_or("HTTP/1.1");
        write!(
            upstream,
            "{method} {} {version}\r\n",
            if path.is_empty() { "/" } else { path }
        )?;
        for line in &head {
            upstream.write_all(line.as_bytes())?;
        }
        upstream.write_all(b"\r\n")?;
    }
    // Bytes the reader already buffered past the head belong to the tunnel.
    upstream.write_all(reader.buffer())?;
    let mut up_read = upstream.try_clone()?;
    let mut down_write = client.try_clone()?;
    let down = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_read, &mut down_write);
        let _ = down_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut reader.into_inner(), &mut upstream);
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}
