//! TLS end to end, as a site behind a TLS-inspecting proxy sees it: every cloud served over
//! HTTPS with a certificate from a throw-away CA made at run time (`util::tls::Pki`), the real
//! server, handler and client binaries, and the CA variables a user would set. moto serves EC2
//! over HTTPS itself (`moto_server -c -k`); the Azure and GCP fakes sit behind a TLS front.
//!
//! This machine exports `SSL_CERT_FILE`, `SSL_CERT_DIR`, `AWS_CA_BUNDLE` and
//! `REQUESTS_CA_BUNDLE` for its own package traffic: every test here takes all of them away
//! ([`clean`]) and sets only the one it means.

mod util;

use std::time::{Duration, Instant};

use util::aws_moto::{self, eni_of, Moto, Vpc, V4_ROUTE};
use util::azure_fake::{Fake, FakeRoute, GROUP, SUB};
use util::gcp_fake::GcpFake;
use util::gcp_run::{seed_pair, PROJECT, VPC};
use util::tls::{Pki, TlsFront};
use util::Ha;

/// Every variable that could name a CA bundle or a proxy.
const INHERITED: [&str; 14] = [
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

/// An HA directory whose server inherits none of [`INHERITED`].
fn clean() -> Ha {
    INHERITED
        .iter()
        .fold(Ha::new().with_private_runtime_dir(), |ha, var| {
            ha.without_env(var)
        })
}

/// moto over HTTPS with a fresh VPC in it, made through a client that trusts the test CA.
fn moto_over_https(pki: &Pki) -> (Moto, Vpc) {
    let moto = Moto::start_tls(&pki.path("cert.pem"), &pki.path("key.pem"));
    let vpc = Vpc::create(&moto.client_trusting(aws_moto::any_keys(), &pki.var("ca.pem")));
    (moto, vpc)
}

/// An AWS server pointed at `moto` with static keys, plus `env`.
fn aws_ha(moto: &Moto, env: &[(&str, &str)]) -> Ha {
    let mut ha = env.iter().fold(
        clean()
            .with_env("CSR_HA_CLOUD", "aws")
            .with_env("AWS_ENDPOINT_URL", &moto.endpoint)
            .with_env("AWS_ACCESS_KEY_ID", "AKIAMOTOTESTKEY00001")
            .with_env("AWS_SECRET_ACCESS_KEY", "moto-does-not-check-this")
            .with_env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        |ha, (k, v)| ha.with_env(k, v),
    );
    ha.start();
    ha
}

/// create_node, peerFail and revert of one node on this router's ENI, each asserted in moto.
fn aws_failover(moto: &Moto, vpc: &Vpc, pki: &Pki, ha: &Ha) {
    let ec2 = moto.client_trusting(aws_moto::any_keys(), &pki.var("ca.pem"));
    let (rtb, eni_a, eni_b) = (&vpc.rtb, &vpc.eni_a, &vpc.eni_b);
    ha.ok_starts(
        &format!("create_node -i 1 -t {rtb} -rg us-east-1 -n {eni_a} -r {V4_ROUTE} -m primary"),
        "200: Successfully created new node with index 1",
    );
    let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert!(
        out.starts_with(&format!(
            "200: node 1 peerFail: {V4_ROUTE} in {rtb} now via {eni_a} (was {eni_b})"
        )),
        "{out}"
    );
    assert_eq!(eni_of(&ec2, rtb, V4_ROUTE).as_deref(), Some(eni_a.as_str()));
    // Someone points the route back at the peer; revert brings it home.
    ec2.call(
        "ReplaceRoute",
        &[
            ("RouteTableId", rtb),
            ("DestinationCidrBlock", V4_ROUTE),
            ("NetworkInterfaceId", eni_b),
        ],
        aws_moto::deadline(),
    )
    .expect("ReplaceRoute");
    let out = ha.ok("node_event", &["-i", "1", "-e", "revert"]);
    assert!(out.starts_with("200: node 1 revert: "), "{out}");
    assert_eq!(eni_of(&ec2, rtb, V4_ROUTE).as_deref(), Some(eni_a.as_str()));
}

#[test]
fn aws_over_https_fails_over_with_aws_ca_bundle_or_csr_ha_ca_bundle() {
    let pki = Pki::new();
    let (moto, vpc) = moto_over_https(&pki);
    let ca = pki.var("ca.pem");
    let ha = aws_ha(&moto, &[("AWS_CA_BUNDLE", &ca)]);
    aws_failover(&moto, &vpc, &pki, &ha);

    // CSR_HA_CA_BUNDLE comes first: an AWS_CA_BUNDLE that does not hold the CA is not read.
    let (moto, vpc) = moto_over_https(&pki);
    let other = pki.var("other_ca.pem");
    let ha = aws_ha(&moto, &[("CSR_HA_CA_BUNDLE", &ca), ("AWS_CA_BUNDLE", &other)]);
    aws_failover(&moto, &vpc, &pki, &ha);
}

/// `node_event` as the user runs it: exit code 1 and the line, and how long it took.
fn failing_peer_fail(ha: &Ha) -> (String, Duration) {
    let started = Instant::now();
    let out = ha.expect(1, "node_event", &["-i", "1", "-e", "peerFail"]);
    (out.trim().to_string(), started.elapsed())
}

#[test]
fn aws_over_https_without_the_sites_ca_fails_at_once_naming_the_variables() {
    let pki = Pki::new();
    let (moto, vpc) = moto_over_https(&pki);
    let host = moto.endpoint.trim_start_matches("https://").to_string();
    let (rtb, eni) = (&vpc.rtb, &vpc.eni_a);
    let create = format!("create_node -i 1 -t {rtb} -rg us-east-1 -n {eni} -m primary");

    // No variable: the built-in roots, which do not hold the test CA.
    let ha = aws_ha(&moto, &[]);
    ha.ok_line(&create);
    let (out, took) = failing_peer_fail(&ha);
    assert_eq!(
        out,
        format!(
            "400: node 1 peerFail: TLS: the certificate of {host} is not trusted by the built-in \
             Mozilla roots (UnknownIssuer); behind a TLS-inspecting proxy set AWS_CA_BUNDLE or \
             CSR_HA_CA_BUNDLE to its CA"
        )
    );
    // One try, not a retry loop until the deadline (it was 14 tries in 25.7 s).
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A bundle that does not hold the CA: named in the message.
    let other = pki.var("other_ca.pem");
    let ha = aws_ha(&moto, &[("AWS_CA_BUNDLE", &other)]);
    ha.ok_line(&create);
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.starts_with(&format!(
            "400: node 1 peerFail: TLS: the certificate of {host} is not trusted by \
             AWS_CA_BUNDLE={other} (UnknownIssuer); set AWS_CA_BUNDLE or CSR_HA_CA_BUNDLE"
        )),
        "{out}"
    );

    // A bundle that cannot be read: the variable and the path, before any request.
    let missing = pki.var("missing.pem");
    let ha = aws_ha(&moto, &[("CSR_HA_CA_BUNDLE", &missing), ("AWS_CA_BUNDLE", &pki.var("ca.pem"))]);
    ha.ok_line(&create);
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.starts_with(&format!(
            "400: node 1 peerFail: CA bundle CSR_HA_CA_BUNDLE={missing}: cannot be read: "
        )),
        "{out}"
    );
    for out in [&out] {
        assert!(!out.contains("gave up after"), "{out}");
    }
}
