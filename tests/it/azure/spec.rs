//! The Azure fake holds requests to Azure's published description (`routeTable.json` and
//! `network.json`, api-version 2024-05-01, in ../shared/reference/api/azure): a body field, path,
//! verb or api-version it does not define is refused as ARM refuses, and the description's own
//! example answers are read by the provider as they are published.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::node::{Param, Provider};
use csr_ha::protocol::Status;
use util::azure_fake::spec::{reference, spec};
use util::azure_fake::{table_id, Fake};
use util::azure_run::{fake_with_table, only, run, OURS};

/// One request to the fake as the managed identity, the way the provider sends it.
fn send(fake: &Fake, method: &str, path_and_query: &str, body: &str) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{}{path_and_query}", fake.base);
    let token = format!("Bearer {}", fake.state().imds_token);
    let mut reply = match method {
        "PUT" => agent
            .put(&url)
            .header("Authorization", &token)
            .header("Accept", "application/json")
            .header("Content-Type", "application/json")
            .send(body),
        "POST" => agent
            .post(&url)
            .header("Authorization", &token)
            .header("Accept", "application/json")
            .send(body),
        _ => agent
            .get(&url)
            .header("Authorization", &token)
            .header("Accept", "application/json")
            .call(),
    }
    .expect("the fake answers");
    let text = reply.body_mut().read_to_string().unwrap_or_default();
    (
        reply.status().as_u16(),
        serde_json::from_str(&text).unwrap_or_default(),
    )
}

#[test]
fn a_body_field_the_description_does_not_define_is_refused_with_arms_error() {
    if !csr_ha_fakes::descriptions_or_skip(
        "azure::spec::a_body_field_the_description_does_not_define_is_refused_with_arms_error",
    ) {
        return;
    }
    let fake = fake_with_table("rt-spec");
    let path = format!(
        "{}/routes/to-dc?api-version=2024-05-01",
        table_id("rt-spec")
    );
    let good = r#"{"properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.20"}}"#;
    let unknown = r#"{"properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIp":"10.0.1.20"}}"#;
    let read_only = r#"{"properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"None","provisioningState":"Succeeded"}}"#;

    let (status, answer) = send(&fake, "PUT", &path, unknown);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "InvalidRequestContent");
    let message = answer["error"]["message"]
        .as_str()
        .expect("ARM's error shape");
    assert!(
        message.contains("the body field /properties/nextHopIp is not in the description"),
        "{message}"
    );
    let (status, answer) = send(&fake, "PUT", &path, read_only);
    assert_eq!(status, 400);
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("/properties/provisioningState is read-only")));
    assert_eq!(send(&fake, "PUT", &path, good).0, 200);
    assert_eq!(fake.route("rt-spec", "to-dc").hop_ip.as_deref(), Some(OURS));
}

#[test]
fn a_path_verb_or_api_version_the_description_does_not_define_is_refused() {
    if !csr_ha_fakes::descriptions_or_skip(
        "azure::spec::a_path_verb_or_api_version_the_description_does_not_define_is_refused",
    ) {
        return;
    }
    let fake = fake_with_table("rt-spec-2");
    let table = table_id("rt-spec-2");
    let (status, answer) = send(&fake, "GET", &format!("{table}?api-version=2023-01-01"), "");
    assert_eq!(status, 400);
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("api-version 2023-01-01 is not the description's 2024-05-01")));
    let (status, answer) = send(
        &fake,
        "POST",
        &format!("{table}?api-version=2024-05-01"),
        "{}",
    );
    assert_eq!(status, 400);
    assert!(answer["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("POST is not an operation")));
    let (status, _) = send(
        &fake,
        "GET",
        &format!("{table}/routez/to-dc?api-version=2024-05-01"),
        "",
    );
    assert_eq!(status, 400);
    assert_eq!(
        send(&fake, "GET", &format!("{table}?api-version=2024-05-01"), "").0,
        200
    );
}

#[test]
fn the_descriptions_own_example_requests_pass_the_check() {
    if !csr_ha_fakes::descriptions_or_skip(
        "azure::spec::the_descriptions_own_example_requests_pass_the_check",
    ) {
        return;
    }
    let spec = spec().expect("descriptions");
    for (example, method, path, body) in [
        (
            "examples/RouteTableRouteCreate.json",
            "PUT",
            "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/routeTables/testrt/routes/route1",
            "routeParameters",
        ),
        (
            "examples/RouteTableCreateWithRoute.json",
            "PUT",
            "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/routeTables/testrt",
            "parameters",
        ),
    ] {
        let body = reference(example)["parameters"][body].to_string();
        assert_eq!(
            spec.check(method, path, Some(spec.api_version()), &body),
            Ok(()),
            "{example}"
        );
    }
}

#[test]
fn the_route_table_get_example_is_read_as_published() {
    if !csr_ha_fakes::descriptions_or_skip(
        "azure::spec::the_route_table_get_example_is_read_as_published",
    ) {
        return;
    }
    let fake = Fake::start();
    let example = reference("examples/RouteTableGet.json");
    let body = example["responses"]["200"]["body"].to_string();
    fake.add_verbatim_table("subid", "rg1", "testrt", &body);
    let node = |route: Option<&str>| {
        let mut params = vec![
            (Param::Cloud, "azure"),
            (Param::SubscriptionId, "subid"),
            (Param::ResourceGroup, "rg1"),
            (Param::RouteTableName, "testrt"),
            (Param::NextHop, OURS),
        ];
        params.extend(route.map(|r| (Param::Route, r)));
        util::node(1, Provider::Azure, &params)
    };

    let all = run(&fake, EventKind::PeerFail, vec![node(None)]);
    util::assert_outcome_says(
        only(&all),
        Status::Ok,
        "no route in testrt points at a router, no write",
    );
    let one = run(&fake, EventKind::PeerFail, vec![node(Some("10.0.3.0/24"))]);
    util::assert_outcome_says(
        only(&one),
        Status::Failed,
        "Route 10.0.3.0/24 in Route Table testrt does not point at a router",
    );
    let gets: Vec<_> = fake
        .seen()
        .into_iter()
        .filter(|s| s.is_table_get())
        .collect();
    assert_eq!(gets.len(), 2);
    assert!(gets.iter().all(|g| g.status == 200));
}
