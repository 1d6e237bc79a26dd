//! The latency proxy used by `examples/cloud_latency_bench.rs`: each request is held for the
//! delay (once per request, also on a keep-alive connection), passed on byte for byte, and
//! counted with its kind. Only lower bounds on time are asserted (a sleep never ends early).
use crate::util;

use util::latency_proxy;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use latency_proxy::{Kind, Latency};

/// An upstream that answers every request with `METHOD TARGET BODY`.
fn echo() -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let address = server.server_addr().to_ip().expect("an IP listener");
    let url = format!("http://{address}");
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let text = format!("{} {} {body}", request.method(), request.url());
            let _ = request.respond(tiny_http::Response::from_string(text));
        }
    });
    url
}

fn classify(_method: &str, target: &str) -> Kind {
    if target.starts_with("/meta") {
        Kind::Metadata
    } else {
        Kind::Api
    }
}

/// Reads one response with a `Content-Length` body; returns the body.
fn response(reader: &mut BufReader<TcpStream>) -> String {
    let mut length = 0;
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).expect("read") > 0, "closed");
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().expect("length");
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    String::from_utf8(body).expect("utf8")
}

#[test]
fn each_request_on_a_keep_alive_connection_is_delayed_and_counted() {
    let delay = Duration::from_millis(40);
    let latency = Latency::new(delay);
    let front = latency.front("echo", &echo(), classify);
    let stream = TcpStream::connect(&front.host).expect("connect");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);

    let started = Instant::now();
    writer
        .write_all(b"POST /api/one HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .expect("send");
    assert_eq!(response(&mut reader), "POST /api/one hello");
    let first = started.elapsed();

    let started = Instant::now();
    writer
        .write_all(
            b"PUT /meta/two?x=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\n\r\n",
        )
        .expect("send");
    assert_eq!(response(&mut reader), "PUT /meta/two?x=1 abcdefg");
    let second = started.elapsed();

    assert!(first >= delay, "first request took {first:?}");
    assert!(second >= delay, "second request took {second:?}");
    let tally = latency.take();
    assert_eq!(tally.total(), 2);
    assert_eq!(tally.connections(), 1);
    assert_eq!(tally.count(Kind::Api), 1);
    assert_eq!(tally.count(Kind::Metadata), 1);
    assert_eq!(tally.requests[1].method, "PUT");
    assert_eq!(tally.requests[1].target, "/meta/two?x=1");
    assert_eq!(tally.requests[0].upstream, "echo");
    assert_eq!(latency.take().total(), 0, "take() starts a new tally");
}

#[test]
fn a_pooled_client_pays_the_delay_once_per_request_and_delay_zero_still_counts() {
    let delay = Duration::from_millis(30);
    let latency = Latency::new(delay);
    let front = latency.front("echo", &echo(), classify);
    let agent = ureq::Agent::new_with_defaults();
    let started = Instant::now();
    for i in 0..3 {
        let text = agent
            .get(&format!("{}/api/{i}", front.url))
            .call()
            .expect("get")
            .body_mut()
            .read_to_string()
            .expect("body");
        assert_eq!(text, format!("GET /api/{i} "));
    }
    assert!(started.elapsed() >= delay * 3, "{:?}", started.elapsed());
    let tally = latency.take();
    assert_eq!(tally.count(Kind::Api), 3);
    assert_eq!(tally.connections(), 1, "ureq reused its connection");

    latency.set_delay(Duration::ZERO);
    assert_eq!(latency.delay(), Duration::ZERO);
    let text = agent
        .post(&format!("{}/meta/x", front.url))
        .send("body")
        .expect("post")
        .body_mut()
        .read_to_string()
        .expect("body");
    assert_eq!(text, "POST /meta/x body");
    assert_eq!(latency.take().count(Kind::Metadata), 1);
}

#[test]
fn a_form_bodys_action_is_recorded_for_counting_ec2_calls() {
    let latency = Latency::new(Duration::ZERO);
    let front = latency.front("echo", &echo(), classify);
    let agent = ureq::Agent::new_with_defaults();
    for body in [
        "Version=2016-11-15&Action=ReplaceRoute&RouteTableId=rtb-1",
        "no form",
    ] {
        agent
            .post(&format!("{}/", front.url))
            .send(body)
            .expect("post");
    }
    let actions: Vec<Option<String>> = latency
        .take()
        .requests
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(actions, [Some("ReplaceRoute".to_string()), None]);
}
