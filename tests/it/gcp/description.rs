//! The GCP fake holds every Compute and Resource Manager request against Google's discovery
//! documents (`../shared/reference/api/gcp/`), so a request the cloud would refuse fails here
//! too: an unknown body field, query parameter, path or verb gets Google's 400 with the reason,
//! and an `Accept` other than `application/json` is refused. The provider's own requests,
//! polls and permission probe included, pass those checks.

use crate::util;

use csr_ha::cloud::http::{Client, Method, Request, Service};
use csr_ha::event::EventKind;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use util::gcp_fake::{discovery, GcpFake};
use util::gcp_run::{config, event_on, router_a, run, seed_pair, started, PROJECT};

/// Sends `method path` with `body` to the fake as an authorised client would; the answer's
/// status and body.
fn send(
    fake: &GcpFake,
    method: Method,
    path: &str,
    body: Option<Value>,
    accept: &str,
) -> (u16, Value) {
    let url = format!("{}{path}", fake.url);
    let token = fake.state().access_token.clone();
    let mut request = Request::new(method, &url)
        .header("Accept", accept)
        .header("Authorization", format!("Bearer {token}"));
    if let Some(body) = body {
        request = request.json(body.to_string());
    }
    let reply = Client::new(Service::Metadata)
        .send(&request, Instant::now() + Duration::from_secs(5))
        .expect("the fake answers");
    (
        reply.status,
        serde_json::from_str(&reply.body).unwrap_or(Value::Null),
    )
}

const ROUTES: &str = "/compute/v1/projects/proj-1/global/routes";

fn route_body(extra: (&str, Value)) -> Value {
    let mut body = json!({"name": "route-a",
        "network": format!("{}/projects/proj-1/global/networks/vpc-1", discovery::resource_base().expect("descriptions")),
        "destRange": "10.99.0.0/16", "nextHopIp": "10.0.1.20", "priority": 100});
    body[extra.0] = extra.1;
    body
}

fn refused(answer: &(u16, Value)) -> &str {
    assert_eq!(answer.0, 400, "{:?}", answer.1);
    assert_eq!(answer.1["error"]["status"], "INVALID_ARGUMENT");
    answer.1["error"]["message"].as_str().expect("a message")
}

#[test]
fn a_body_field_the_description_does_not_define_is_refused_with_googles_words() {
    if !csr_ha_fakes::descriptions_or_skip("gcp::description::a_body_field_the_description_does_not_define_is_refused_with_googles_words") {
        return;
    }
    let fake = GcpFake::start();
    let json = "application/json";
    let answer = send(
        &fake,
        Method::Post,
        ROUTES,
        Some(route_body(("nextHop", json!("10.0.1.20")))),
        json,
    );
    assert_eq!(
        refused(&answer),
        "Invalid JSON payload received. Unknown name \"nextHop\" at 'resource': Cannot find field."
    );
    // A field the schema defines is accepted, and the insert starts an operation.
    let answer = send(
        &fake,
        Method::Post,
        ROUTES,
        Some(route_body(("description", json!("HA")))),
        json,
    );
    assert_eq!(answer.0, 200, "{:?}", answer.1);
    assert_eq!(answer.1["kind"], "compute#operation");
    assert!(fake.state().refused.len() == 1);
}

#[test]
fn an_undefined_path_verb_or_query_parameter_is_refused() {
    if !csr_ha_fakes::descriptions_or_skip(
        "gcp::description::an_undefined_path_verb_or_query_parameter_is_refused",
    ) {
        return;
    }
    let fake = GcpFake::start();
    let route = format!("{ROUTES}/route-a");
    let cases = [
        (
            Method::Put,
            route.as_str(),
            "application/json",
            "does not take PUT",
        ),
        (
            Method::Get,
            "/compute/v1/projects/proj-1/global/routez/a",
            "application/json",
            "no method of the API description has the path",
        ),
        (
            Method::Delete,
            &format!("{route}?requestid=1"),
            "application/json",
            "Unknown name \"requestid\"",
        ),
        (
            Method::Get,
            route.as_str(),
            "*/*",
            "Accept is Some(\"*/*\")",
        ),
    ];
    for (method, path, accept, says) in cases {
        let body = (method == Method::Put).then(|| json!({}));
        let answer = send(&fake, method, path, body, accept);
        assert!(refused(&answer).contains(says), "{path}: {:?}", answer.1);
    }
    assert_eq!(fake.state().refused.len(), 4);
}

#[test]
fn every_event_and_its_polls_and_probe_pass_the_descriptions_checks() {
    if !csr_ha_fakes::descriptions_or_skip(
        "gcp::description::every_event_and_its_polls_and_probe_pass_the_descriptions_checks",
    ) {
        return;
    }
    let (fake, dir) = started();
    seed_pair(&fake);
    fake.state().polls_until_done = 2;
    for kind in [EventKind::Verify, EventKind::PeerFail, EventKind::Revert] {
        if kind == EventKind::Revert {
            // So that the revert re-inserts it, and its dry run probes.
            fake.state().routes.remove(&format!("{PROJECT}/route-a"));
        }
        let dry = run(
            &config(&fake),
            dir.path(),
            Action::DryRun(kind),
            vec![router_a("secondary")],
        );
        util::assert_outcome(&dry[0], Status::Ok);
        let out = event_on(&fake, dir.path(), kind, router_a("secondary"));
        assert_ne!(out.outcome, Status::Failed, "{kind:?}: {}", out.message);
    }
    let state = fake.state();
    assert!(state.refused.is_empty(), "{:?}", state.refused);
    assert!(
        state.waits.values().any(|&n| n == 2),
        "operations were polled"
    );
    assert_eq!(
        state
            .requests
            .iter()
            .filter(|r| r.ends_with(":testIamPermissions"))
            .count(),
        3
    );
    assert!(state.routes.contains_key(&format!("{PROJECT}/route-a")));
}
