//! AWS writes of one event go out concurrently, a bounded number at a time, and each is retried
//! when EC2 throttles it. A loopback EC2 serving every request on its own thread counts how many
//! `ReplaceRoute` calls are in flight at once.

use crate::util;

use util::loopback::form;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csr_ha::cloud::aws::{self, AwsConfig, CredentialSources, Credentials};
use csr_ha::event::EventKind;
use csr_ha::event_log::EventLog;
use csr_ha::node::{Param, Provider};
use csr_ha::protocol::Status;
use csr_ha::work::{Action, Work};

const TABLE: &str = "rtb-0c0c0c0c";
const OURS: &str = "eni-00000001";

#[derive(Default)]
struct Ec2 {
    routes: BTreeMap<String, String>,
    in_flight: usize,
    max_in_flight: usize,
    replaces: usize,
    /// ReplaceRoute calls still to answer 503 RequestLimitExceeded.
    throttle: usize,
    throttled: usize,
}

fn describe(state: &Ec2) -> String {
    let routes: String = state
        .routes
        .iter()
        .map(|(d, eni)| {
            format!("<item><destinationCidrBlock>{d}</destinationCidrBlock><networkInterfaceId>{eni}</networkInterfaceId></item>")
        })
        .collect();
    format!("<DescribeRouteTablesResponse><routeTableSet><item><routeTableId>{TABLE}</routeTableId><routeSet>{routes}</routeSet></item></routeTableSet></DescribeRouteTablesResponse>")
}

/// Starts the fake; it serves until the test process ends.
fn start(routes: usize, throttle: usize) -> (String, Arc<Mutex<Ec2>>) {
    let state = Arc::new(Mutex::new(Ec2 {
        routes: (0..routes)
            .map(|i| {
                (
                    format!("10.{}.{}.0/24", 100 + i / 250, i % 250),
                    "eni-00000002".to_string(),
                )
            })
            .collect(),
        throttle,
        ..Default::default()
    }));
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", server.server_addr().to_ip().expect("ip"));
    let shared = Arc::clone(&state);
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let state = Arc::clone(&shared);
            std::thread::spawn(move || {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let params = form(&body);
                let (status, text) = match params.get("Action").map(String::as_str) {
                    Some("DescribeRouteTables") => {
                        (200, describe(&state.lock().expect("state")))
                    }
                    Some("ReplaceRoute") => replace(&state, &params),
                    _ => (400, "<Response><Errors><Error><Code>InvalidAction</Code><Message>no</Message></Error></Errors></Response>".into()),
                };
                let _ = request
                    .respond(tiny_http::Response::from_string(text).with_status_code(status));
            });
        }
    });
    (url, state)
}

fn replace(state: &Mutex<Ec2>, params: &BTreeMap<String, String>) -> (u16, String) {
    {
        let mut s = state.lock().expect("state");
        s.replaces += 1;
        if s.throttle > 0 {
            s.throttle -= 1;
            s.throttled += 1;
            return (503, "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors></Response>".into());
        }
        s.in_flight += 1;
        s.max_in_flight = s.max_in_flight.max(s.in_flight);
    }
    std::thread::sleep(Duration::from_millis(25));
    let mut s = state.lock().expect("state");
    s.in_flight -= 1;
    let destination = params
        .get("DestinationCidrBlock")
        .cloned()
        .unwrap_or_default();
    let eni = params
        .get("NetworkInterfaceId")
        .cloned()
        .unwrap_or_default();
    s.routes.insert(destination, eni);
    (
        200,
        "<ReplaceRouteResponse><return>true</return></ReplaceRouteResponse>".into(),
    )
}

fn peer_fail(url: &str, in_flight: Option<usize>) -> csr_ha::work::NodeOutcome {
    let dir = tempfile::tempdir().expect("tempdir");
    let params = [
        (Param::RouteTableId, TABLE),
        (Param::Region, "us-east-1"),
        (Param::EniId, OURS),
    ];
    let node = util::node(1, Provider::Aws, &params);
    let work = Work {
        deadline_ms: 30_000,
        ..util::work(
            Action::Event(EventKind::PeerFail),
            Provider::Aws,
            dir.path(),
            vec![node],
        )
    };
    let config = AwsConfig {
        endpoint: Some(url.to_string()),
        credentials: CredentialSources {
            static_keys: Some(Credentials::new("AKIATEST", "secret", None)),
            ..Default::default()
        },
        writes_in_flight: in_flight,
    };
    let deadline = Instant::now() + Duration::from_millis(work.deadline_ms);
    let mut log = EventLog::new(&work);
    aws::run_with(&work, deadline, &mut log, &config).remove(0)
}

#[test]
fn writes_go_out_four_at_a_time_and_throttled_ones_are_retried() {
    let (url, state) = start(24, 3);
    let out = peer_fail(&url, None);
    util::assert_outcome(&out, Status::Ok);
    let s = state.lock().expect("state");
    assert!(
        s.routes.values().all(|eni| eni == OURS),
        "every route moved"
    );
    assert_eq!(s.max_in_flight, 4, "at most 4 in flight, and 4 reached");
    assert_eq!(
        (s.throttled, s.replaces),
        (3, 27),
        "throttled writes sent again"
    );
}

#[test]
fn the_bound_is_configurable() {
    let (url, state) = start(10, 0);
    let out = peer_fail(&url, Some(2));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(state.lock().expect("state").max_in_flight, 2);
    let (url, state) = start(5, 0);
    let out = peer_fail(&url, Some(1));
    util::assert_outcome(&out, Status::Ok);
    assert_eq!(state.lock().expect("state").max_in_flight, 1);
}
