//! The one retry policy every provider and credential source goes through (`cloud::http`):
//! 429, 5xx and connection errors are retried with backoff or after `Retry-After`, a cloud's own
//! "try again" answers too, everything else is handed back at once, and no wait passes the
//! event's deadline.

use crate::util;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csr_ha::cloud::http::{Client, Method, Reply, Request, Service};

/// A loopback server answering from a script of (status, Retry-After) and counting requests;
/// once the script is used up it answers 200.
fn scripted(script: &[(u16, Option<u64>)]) -> (String, Arc<Mutex<u32>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/x", server.server_addr().to_ip().expect("ip"));
    let count = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&count);
    let mut script: VecDeque<(u16, Option<u64>)> = script.iter().copied().collect();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            *seen.lock().expect("count") += 1;
            let (status, after) = script.pop_front().unwrap_or((200, None));
            let mut response = tiny_http::Response::from_string(format!("answer {status}"))
                .with_status_code(status);
            if let Some(secs) = after {
                let header =
                    tiny_http::Header::from_bytes("Retry-After", secs.to_string()).expect("header");
                response.add_header(header);
            }
            let _ = request.respond(response);
        }
    });
    (url, count)
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[test]
fn throttling_and_server_errors_are_retried_until_an_answer() {
    let (url, count) = scripted(&[(503, None), (429, Some(1)), (500, None)]);
    let client = Client::new(Service::Metadata);
    let started = Instant::now();
    let reply = client
        .send(&Request::get(&url), in_secs(20))
        .expect("an answer");
    assert_eq!((reply.status, reply.body.as_str()), (200, "answer 200"));
    assert_eq!(*count.lock().expect("count"), 4);
    assert_eq!(client.requests(), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
}

#[test]
fn other_answers_are_handed_back_at_once_unless_the_cloud_says_retry() {
    let (url, count) = scripted(&[(400, None), (409, None)]);
    let client = Client::new(Service::Metadata);
    let reply = client
        .send(&Request::get(&url), in_secs(20))
        .expect("an answer");
    assert_eq!(reply.status, 400);
    assert_eq!(*count.lock().expect("count"), 1);
    let busy = |r: &Reply| r.status == 409;
    let reply = client
        .send(&Request::get(&url).retry_if(&busy), in_secs(20))
        .expect("an answer");
    assert_eq!(reply.status, 200, "the 409 was retried as the cloud asked");
    assert_eq!(*count.lock().expect("count"), 3);
}

#[test]
fn tries_and_the_deadline_bound_the_retries() {
    let (url, count) = scripted(&[(500, None), (500, None), (500, None), (500, None)]);
    let client = Client::new(Service::Metadata);
    let reply = client
        .send(&Request::get(&url).tries(2), in_secs(20))
        .expect("the last answer");
    assert_eq!((reply.status, *count.lock().expect("count")), (500, 2));

    // A Retry-After past the deadline is not waited for: the answer comes back now.
    let (url, count) = scripted(&[(429, Some(30))]);
    let started = Instant::now();
    let reply = client
        .send(&Request::get(&url), in_secs(5))
        .expect("the answer");
    assert_eq!((reply.status, *count.lock().expect("count")), (429, 1));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn connection_errors_are_retried_until_the_deadline() {
    let port = util::loopback::free_port();
    let url = format!("http://127.0.0.1:{port}/x");
    let client = Client::new(Service::Metadata);
    let deadline = Instant::now() + Duration::from_millis(800);
    let err = client
        .send(&Request::get(&url), deadline)
        .err()
        .expect("nobody listens");
    assert!(err.tries > 1, "{err}");
    assert!(err.to_string().contains("gave up after"), "{err}");
    assert!(
        Instant::now() < deadline + Duration::from_millis(500),
        "waits end at the deadline"
    );
}

#[test]
fn an_error_answer_echoing_the_request_has_its_secrets_masked() {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/token", server.server_addr().to_ip().expect("ip"));
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let headers: Vec<String> = request.headers().iter().map(|h| h.to_string()).collect();
            let text = format!(
                "{{\"error\":{{\"code\":\"Bad\",\"message\":\"you sent {} and {}\"}}}}",
                body.replace('/', "\\/"),
                headers.join("; ")
            );
            let _ = request.respond(tiny_http::Response::from_string(text).with_status_code(400));
        }
    });
    let key = "Super+Secret/123=a%b&c";
    let token = "eyJ0b2tlbi1wYXJ0.sig";
    let client = Client::new(Service::Metadata);
    let request = Request::new(Method::Post, &url)
        .secret_header("Authorization", format!("Bearer {token}"))
        .secret(key)
        .form(&[("client_id", "app-1"), ("client_secret", key)]);
    let reply = client.send(&request, in_secs(10)).expect("an answer");
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("client_id=app-1"), "{}", reply.body);
    let parse = |_: u16, body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        Some((
            v["error"]["code"].as_str()?.to_string(),
            v["error"]["message"].as_str()?.to_string(),
        ))
    };
    let error = reply.error("Test", parse).to_string();
    for text in [&reply.body, &error] {
        assert!(!text.contains(token), "{text}");
        assert!(
            !text.contains("Super%2BSecret") && !text.contains("Secret\\/123"),
            "{text}"
        );
        assert!(text.contains("********"), "{text}");
    }
}

/// A client whose CA variables are `vars` only (this machine exports some), and with no system
/// bundle (this machine has one), so the built-in roots alone are checked.
fn client_with(service: Service, vars: &[(&str, &str)]) -> Client {
    Client::with_env(service, &|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| (name == "CSR_HA_SYSTEM_CA_PATHS").then(String::new))
    })
}

#[test]
fn an_untrusted_certificate_is_tried_once_and_reported_with_the_fix() {
    let pki = util::tls::Pki::new();
    let (plain, count) = scripted(&[(503, None)]);
    let front = util::tls::TlsFront::start(&pki, plain.trim_end_matches("/x"));
    let url = format!("{}/x", front.url);
    let err = client_with(Service::Aws, &[])
        .send(&Request::get(&url), in_secs(20))
        .err()
        .expect("the test CA is not among the built-in roots");
    let host = front.url.trim_start_matches("https://");
    assert_eq!(
        err.to_string(),
        format!(
            "TLS: the certificate of {host} is not trusted (UnknownIssuer); behind a \
             TLS-inspecting proxy set AWS_CA_BUNDLE or CSR_HA_CA_BUNDLE to its CA \
             (checked against the built-in Mozilla roots)"
        )
    );
    assert!(err.permanent && err.tries == 1, "{err:?}");
    assert_eq!(front.connections(), 1, "one handshake, no retry");
    assert_eq!(*count.lock().expect("count"), 0);

    // Trusting the CA, the same server answers, and its 503 is retried like any other.
    let ca = pki.var("ca.pem");
    let client = client_with(Service::Gcp, &[("REQUESTS_CA_BUNDLE", &ca)]);
    let reply = client
        .send(&Request::get(&url), in_secs(20))
        .expect("an answer");
    assert_eq!((reply.status, *count.lock().expect("count")), (200, 2));
}

/// `SSL_CERT_DIR` is OpenSSL's: a `:`-separated list of directories, one that does not exist
/// skipped, as OpenSSL skips it; only a list that yields no certificate is unusable.
#[test]
fn ssl_cert_dir_is_a_list_of_directories_as_openssl_reads_it() {
    let pki = util::tls::Pki::new();
    let (plain, count) = scripted(&[]);
    let front = util::tls::TlsFront::start(&pki, plain.trim_end_matches("/x"));
    let url = format!("{}/x", front.url);
    let ca_dir = pki.path("ca.pem");
    let ca_dir = ca_dir.parent().and_then(|d| d.to_str()).expect("utf-8 dir");
    let missing = format!("{ca_dir}/no-such-dir");
    let client = client_with(
        Service::Gcp,
        &[("SSL_CERT_DIR", &format!("{missing}:{ca_dir}"))],
    );
    let reply = client
        .send(&Request::get(&url), in_secs(20))
        .expect("the CA in the list's second directory is trusted");
    assert_eq!((reply.status, *count.lock().expect("count")), (200, 1));

    let err = client_with(Service::Gcp, &[("SSL_CERT_DIR", &missing)])
        .send(&Request::get(&url), in_secs(20))
        .err()
        .expect("no directory of the list exists");
    assert!(err.permanent && err.tries == 0, "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("CA bundle SSL_CERT_DIR={missing}: ")),
        "{err}"
    );
}

#[test]
fn a_ca_bundle_that_cannot_be_used_fails_every_request_before_it_is_sent() {
    let (url, count) = scripted(&[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").expect("write");
    let empty = empty.to_str().expect("utf-8");
    let client = client_with(Service::Azure, &[("CSR_HA_CA_BUNDLE", empty)]);
    let err = client
        .send(&Request::get(&url), in_secs(20))
        .err()
        .expect("an unusable bundle");
    assert_eq!(
        err.to_string(),
        format!(
            "CA bundle CSR_HA_CA_BUNDLE={empty}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )
    );
    assert!(err.permanent && err.tries == 0, "{err:?}");
    assert_eq!(*count.lock().expect("count"), 0, "nothing was sent");
    assert_eq!(client.requests(), 0);
}

#[test]
fn refused_answers_are_tried_once_throttling_and_unreachable_servers_again() {
    let (url, count) = scripted(&[(401, None), (403, None), (429, None)]);
    let client = client_with(Service::Aws, &[]);
    for status in [401, 403] {
        let reply = client
            .send(&Request::get(&url), in_secs(20))
            .expect("an answer");
        assert_eq!(reply.status, status);
    }
    assert_eq!(*count.lock().expect("count"), 2, "one try each");
    let reply = client
        .send(&Request::get(&url), in_secs(20))
        .expect("an answer");
    assert_eq!(
        (reply.status, *count.lock().expect("count")),
        (200, 4),
        "429 retried"
    );

    let port = util::loopback::free_port();
    let err = client
        .send(
            &Request::get(&format!("http://127.0.0.1:{port}/x")),
            Instant::now() + Duration::from_millis(800),
        )
        .err()
        .expect("nobody listens");
    assert!(
        !err.permanent && err.tries > 1,
        "refused is retried: {err:?}"
    );
}
