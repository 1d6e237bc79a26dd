//! AWS failover on the router's own network shape (`util::netns`): guestshell one routed hop
//! behind the router, the instance metadata service at its default address in the instance
//! netns, its reply to the IMDSv2 token request sent with IP TTL = the hop limit, as AWS sends
//! it. The real server, handler and client binaries run in the guestshell netns.
//!
//! Needs root (`ip netns add`; elsewhere each test prints `SKIPPED`) and `scripts/setup_venv.sh`
//! (moto, boto3).

use crate::util;

use std::time::{Duration, Instant};

use util::netns::{Netns, Tokens};

const ROUTE: &str = "10.99.0.0/16";

/// A node for this router's ENI and [`ROUTE`], in a fresh VPC: (rtb, this router's ENI).
fn node(netns: &Netns, ha: &util::Ha) -> (String, String, String) {
    let (rtb, eni_a, eni_b) = netns.vpc();
    let out = ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni_a} -r {ROUTE} -m primary"
    ));
    assert!(out.contains("Successfully created"), "{out}");
    (rtb, eni_a, eni_b)
}

fn peer_fail(ha: &util::Ha, code: i32) -> (String, Duration) {
    let started = Instant::now();
    let out = ha.expect(code, "node_event", &["-i", "1", "-e", "peerFail"]);
    (out.trim().to_string(), started.elapsed())
}

/// The cached role credentials, forgotten: the next event reads metadata again.
fn forget_role_credentials(ha: &util::Ha) {
    let cache = ha.path("credential_cache");
    for entry in std::fs::read_dir(&cache)
        .expect("credential cache")
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("aws-role-") {
            std::fs::remove_file(entry.path()).expect("rm");
        }
    }
}

fn wipe_credentials(ha: &util::Ha) {
    let _ = std::fs::remove_dir_all(ha.path("credential_cache"));
}

#[test]
fn hop_limit_1_with_imdsv1_allowed_fails_over_within_2_s_and_waits_only_once() {
    let Some(netns) = Netns::new(1, Tokens::Optional) else {
        return;
    };
    let ha = netns.ha();
    // create_node's check already finds the token reply missing: it warns how to fix it.
    let (rtb, eni_a, eni_b) = netns.vpc();
    let out = ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni_a} -r {ROUTE} -m primary"
    ));
    assert!(
        out.contains("199: ")
            && out.contains("instance metadata read with IMDSv1")
            && out.contains("--http-put-response-hop-limit 2"),
        "{out}"
    );

    wipe_credentials(&ha);
    let tokens_before = netns.token_requests();
    let (out, took) = peer_fail(&ha, 0);
    assert!(
        out.starts_with(&format!(
            "200: node 1 peerFail: {ROUTE} in {rtb} now via {eni_a}"
        )),
        "{out}"
    );
    assert!(took <= Duration::from_secs(2), "first event took {took:?}");
    assert_eq!(netns.eni_of(&rtb, ROUTE), eni_a);
    assert_eq!(netns.token_requests(), tokens_before + 1);
    let status = ha.ok("ha_api", &["-c", "status"]);
    assert!(status.contains("metadata     AWS IMDSv1"), "{status}");

    // The next handler reads metadata again, without waiting for a token.
    netns.boto3(&format!(
        "ec2.replace_route(RouteTableId='{rtb}', DestinationCidrBlock='{ROUTE}', NetworkInterfaceId='{eni_b}')"
    ));
    forget_role_credentials(&ha);
    let reads = netns.tokenless_reads();
    let (out, took) = peer_fail(&ha, 0);
    assert!(out.starts_with("200: "), "{out}");
    assert!(took < Duration::from_millis(900), "waited again: {took:?}");
    assert_eq!(
        netns.token_requests(),
        tokens_before + 1,
        "no token request"
    );
    assert!(netns.tokenless_reads() > reads);
    assert_eq!(netns.eni_of(&rtb, ROUTE), eni_a);
}

#[test]
fn hop_limit_1_with_imdsv2_required_fails_within_6_s_naming_the_hop_limit() {
    let Some(netns) = Netns::new(1, Tokens::Required) else {
        return;
    };
    let ha = netns.ha();
    let (rtb, _, eni_b) = node(&netns, &ha);
    let (out, took) = peer_fail(&ha, 1);
    assert!(out.starts_with("400: node 1 peerFail: "), "{out}");
    for words in [
        "did not arrive within 1 s",
        "HttpTokens=required",
        "hop limit (HttpPutResponseHopLimit) is probably 1 while guestshell is one hop behind the router",
        "aws ec2 modify-instance-metadata-options --instance-id <id> --http-put-response-hop-limit 2",
    ] {
        assert!(out.contains(words), "{words:?} not in {out}");
    }
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(netns.eni_of(&rtb, ROUTE), eni_b, "not moved");
}

#[test]
fn hop_limit_2_uses_imdsv2_only() {
    let Some(netns) = Netns::new(2, Tokens::Optional) else {
        return;
    };
    let ha = netns.ha();
    let (rtb, eni_a, _) = node(&netns, &ha);
    wipe_credentials(&ha);
    let (out, _) = peer_fail(&ha, 0);
    assert!(out.starts_with("200: node 1 peerFail: "), "{out}");
    assert_eq!(netns.eni_of(&rtb, ROUTE), eni_a);
    assert!(netns.token_requests() >= 1);
    assert_eq!(
        netns.tokenless_reads(),
        0,
        "{:?}",
        netns.metadata_requests()
    );
    let status = ha.ok("ha_api", &["-c", "status"]);
    assert!(status.contains("metadata     AWS IMDSv2"), "{status}");
}
