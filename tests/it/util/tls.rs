//! TLS for the loopback fakes: a throw-away CA and server certificate made at run time with the
//! `openssl` CLI ([`Pki`]), and a TLS-terminating front ([`TlsFront`]) that serves a plain-HTTP
//! fake over HTTPS, so the clients' whole TLS path (rustls, the roots, the CA variables) runs
//! as it does against a real cloud.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A CA (`ca.pem`) and a server certificate it signed (`cert.pem`, `key.pem`) for 127.0.0.1
/// and localhost, in a temporary directory. `other_ca.pem` is a second CA that signed nothing
/// here: trusting it alone must not be enough.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        // In the target directory: a Pki shared by a test file's tests is never dropped.
        let dir = match option_env!("CARGO_TARGET_TMPDIR") {
            Some(target) => tempfile::tempdir_in(target),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let d = dir.path();
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write ext");
        const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        for ca in ["ca", "other_ca"] {
            openssl(
                d,
                &format!(
                    "req -x509 {EC} -keyout {ca}.key -out {ca}.pem -days 2 \
                     -subj /CN=csr-ha-test-{ca} -addext basicConstraints=critical,CA:TRUE \
                     -addext keyUsage=critical,keyCertSign,cRLSign"
                ),
            );
        }
        openssl(
            d,
            &format!("req {EC} -keyout key.pem -out server.csr -subj /CN=127.0.0.1"),
        );
        openssl(
            d,
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem \
             -days 2 -extfile server.ext",
        );
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path of `name` as a string, for an environment variable.
    pub fn var(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_string()
    }
}

/// `openssl` with `args` (split on white space) in `dir`.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("the TLS tests need the openssl command");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// HTTPS on a loopback port in front of a plain-HTTP server on `backend` (a fake): each
/// connection's TLS is terminated here with the [`Pki`]'s server certificate, one request is
/// forwarded with `Connection: close`, and the answer is sent back the same way.
pub struct TlsFront {
    pub url: String,
    connections: Arc<AtomicUsize>,
}

impl TlsFront {
    pub fn start(pki: &Pki, backend: &str) -> TlsFront {
        let backend = backend
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let config = Arc::new(server_config(pki));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let (config, backend) = (Arc::clone(&config), backend.clone());
                std::thread::spawn(move || {
                    let _ = relay_one(config, client, &backend);
                });
            }
        });
        TlsFront { url, connections }
    }

    /// TCP connections accepted so far (each a TLS handshake tried).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn server_config(pki: &Pki) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(pki.path("cert.pem"))
        .expect("cert.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(pki.path("key.pem")).expect("key.pem");
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config")
}

fn relay_one(
    config: Arc<rustls::ServerConfig>,
    client: TcpStream,
    backend: &str,
) -> std::io::Result<()> {
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, client);
    let request = read_request(&mut tls)?;
    let mut upstream = TcpStream::connect(backend)?;
    upstream.write_all(&request)?;
    let mut answer = Vec::new();
    upstream.read_to_end(&mut answer)?;
    tls.write_all(&close_after(&answer))?;
    tls.conn.send_close_notify();
    tls.flush()
}

/// One HTTP request from `stream`: its head with `Connection: close`, and its body
/// (`Content-Length` bytes).
fn read_request(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    head.extend_from_slice(&body);
    Ok(head)
}

/// An answer with its `Connection` header replaced by `Connection: close`: the client must not
/// keep a connection this front closes.
fn close_after(answer: &[u8]) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut out: Vec<u8> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|line| format!("{line}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&answer[end + 4..]);
    out
}

/// Every variable that could name a CA bundle or a proxy: this machine's own, which a server
/// under test must not inherit.
pub const CA_AND_PROXY_VARIABLES: [&str; 14] = [
    "CSR_HA_CA_BUNDLE",
    "AWS_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];
