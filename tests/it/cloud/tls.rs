//! TLS end to end, as a site behind a TLS-inspecting proxy sees it: every cloud served over
//! HTTPS with a certificate from a throw-away CA made at run time (`util::tls::Pki`), the real
//! server, handler and client binaries, and the CA variables a user would set. moto serves EC2
//! over HTTPS itself (`moto_server -c -k`); the Azure and GCP fakes sit behind a TLS front.
//!
//! This machine exports `SSL_CERT_FILE`, `SSL_CERT_DIR`, `AWS_CA_BUNDLE` and
//! `REQUESTS_CA_BUNDLE` for its own package traffic: every test here takes all of them away
//! ([`clean`]) and sets only the one it means.

use crate::util;

use std::time::{Duration, Instant};

use util::aws_fakes::FakeImds;
use util::aws_moto::{self, eni_of, Moto, Vpc, V4_ROUTE};
use util::azure_fake::{Fake, FakeRoute, GROUP, SUB};
use util::connect_proxy::{port_of, ConnectProxy};
use util::gcp_fake::GcpFake;
use util::gcp_run::{seed_pair, PROJECT};
use util::tls::{Pki, TlsFront};
use util::Ha;

const INHERITED: [&str; 14] = util::tls::CA_AND_PROXY_VARIABLES;

/// An HA directory whose server inherits none of [`INHERITED`], and trusts no system bundle
/// (`CSR_HA_SYSTEM_CA_PATHS` empty) unless a test names one.
fn clean() -> Ha {
    INHERITED
        .iter()
        .fold(Ha::new().with_private_runtime_dir(), |ha, var| {
            ha.without_env(var)
        })
        .with_env("CSR_HA_SYSTEM_CA_PATHS", "")
}

/// The test CA and one moto serving HTTPS with its certificate, shared by this file's tests
/// (moto takes seconds to start); each test makes its own VPC in it.
fn pki_and_moto() -> &'static (Pki, Moto) {
    static SHARED: std::sync::OnceLock<(Pki, Moto)> = std::sync::OnceLock::new();
    SHARED.get_or_init(|| {
        let pki = Pki::new();
        let moto = Moto::start_tls(&pki.path("cert.pem"), &pki.path("key.pem"));
        (pki, moto)
    })
}

/// The shared CA and moto over HTTPS with a fresh VPC in it, made through a client that
/// trusts the test CA.
fn moto_over_https() -> (&'static Pki, &'static Moto, Vpc) {
    let (pki, moto) = pki_and_moto();
    let vpc = Vpc::create(&moto.client_trusting(aws_moto::any_keys(), &pki.var("ca.pem")));
    (pki, moto, vpc)
}

/// An AWS server pointed at `moto` with static keys, plus `env`.
fn aws_ha(moto: &Moto, env: &[(&str, &str)]) -> Ha {
    let mut ha = env.iter().fold(
        util::aws_run::aws_env(clean(), &moto.endpoint),
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
            "200: node 1 peerFail: {V4_ROUTE} in {rtb} now via {eni_a}, "
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
    let (pki, moto, vpc) = moto_over_https();
    let ca = pki.var("ca.pem");
    let ha = aws_ha(moto, &[("AWS_CA_BUNDLE", &ca)]);
    aws_failover(moto, &vpc, pki, &ha);

    // CSR_HA_CA_BUNDLE comes first: an AWS_CA_BUNDLE that does not hold the CA is not read.
    let (_, _, vpc) = moto_over_https();
    let other = pki.var("other_ca.pem");
    let ha = aws_ha(
        moto,
        &[("CSR_HA_CA_BUNDLE", &ca), ("AWS_CA_BUNDLE", &other)],
    );
    aws_failover(moto, &vpc, pki, &ha);
}

/// A site CA added to the system's bundle (`update-ca-trust`) and named by no variable is
/// trusted, beside the built-in roots; a variable that names a bundle still replaces both.
#[test]
fn aws_over_https_trusts_a_ca_found_only_in_the_system_bundle() {
    let (pki, moto, vpc) = moto_over_https();
    let system = pki.path("system-bundle.pem");
    let both = [pki.path("other_ca.pem"), pki.path("ca.pem")]
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read CA"))
        .collect::<String>();
    std::fs::write(&system, both).expect("write the system bundle");
    let system = system.display().to_string();
    let paths = format!("/nonexistent/ca-bundle.crt:{system}");
    let ha = aws_ha(moto, &[("CSR_HA_SYSTEM_CA_PATHS", &paths)]);
    aws_failover(moto, &vpc, pki, &ha);
    let status = ha.ok("ha_api", &["-c", "status"]);
    assert!(
        status.contains(&format!(
            "AWS the built-in Mozilla roots and the system bundle {system}"
        )),
        "{status}"
    );

    // A variable wins over the system bundle, even one that holds the CA.
    let (_, _, vpc) = moto_over_https();
    let other = pki.var("other_ca.pem");
    let ha = aws_ha(
        moto,
        &[
            ("CSR_HA_SYSTEM_CA_PATHS", &paths),
            ("AWS_CA_BUNDLE", &other),
        ],
    );
    let (rtb, eni) = (&vpc.rtb, &vpc.eni_a);
    ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni} -r {V4_ROUTE} -m primary"
    ));
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.contains(&format!("(checked against AWS_CA_BUNDLE={other})")),
        "{out}"
    );

    // A system bundle without the CA: the message names what was checked.
    let ha = aws_ha(moto, &[("CSR_HA_SYSTEM_CA_PATHS", &other)]);
    ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni} -r {V4_ROUTE} -m primary"
    ));
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.ends_with(&format!(
            "(checked against the built-in Mozilla roots and the system bundle {other})"
        )),
        "{out}"
    );
}

/// `node_event` as the user runs it: exit code 1 and the line, and how long it took.
fn failing_peer_fail(ha: &Ha) -> (String, Duration) {
    let started = Instant::now();
    let out = ha.expect(1, "node_event", &["-i", "1", "-e", "peerFail"]);
    (out.trim().to_string(), started.elapsed())
}

#[test]
fn aws_over_https_without_the_sites_ca_fails_at_once_naming_the_variables() {
    let (pki, moto, vpc) = moto_over_https();
    let host = moto.endpoint.trim_start_matches("https://").to_string();
    let (rtb, eni) = (&vpc.rtb, &vpc.eni_a);
    let create = format!("create_node -i 1 -t {rtb} -rg us-east-1 -n {eni} -m primary");

    // No variable: the built-in roots, which do not hold the test CA.
    let ha = aws_ha(moto, &[]);
    ha.ok_line(&create);
    let (out, took) = failing_peer_fail(&ha);
    assert_eq!(
        out,
        format!(
            "400: node 1 peerFail: TLS: the certificate of {host} is not trusted (UnknownIssuer); \
             behind a TLS-inspecting proxy set AWS_CA_BUNDLE or CSR_HA_CA_BUNDLE to its CA \
             (checked against the built-in Mozilla roots)"
        )
    );
    // One try, not a retry loop until the deadline (it was 14 tries in 25.7 s).
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // A bundle that does not hold the CA: named in the message.
    let other = pki.var("other_ca.pem");
    let ha = aws_ha(moto, &[("AWS_CA_BUNDLE", &other)]);
    ha.ok_line(&create);
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.starts_with(&format!(
            "400: node 1 peerFail: TLS: the certificate of {host} is not trusted \
             (UnknownIssuer); set AWS_CA_BUNDLE or CSR_HA_CA_BUNDLE"
        )) && out.contains(&format!("(checked against AWS_CA_BUNDLE={other})")),
        "{out}"
    );

    // A bundle that cannot be read: the variable and the path, before any request.
    let missing = pki.var("missing.pem");
    let ha = aws_ha(
        moto,
        &[
            ("CSR_HA_CA_BUNDLE", &missing),
            ("AWS_CA_BUNDLE", &pki.var("ca.pem")),
        ],
    );
    ha.ok_line(&create);
    let (out, _) = failing_peer_fail(&ha);
    assert!(
        out.starts_with(&format!(
            "400: node 1 peerFail: CA bundle CSR_HA_CA_BUNDLE={missing}: cannot be read: "
        )),
        "{out}"
    );
    assert!(!out.contains("gave up after"), "{out}");
}

/// An Azure fake behind a TLS front, with app credentials for the login endpoint and table
/// `rt1` routing 10.99.0.0/16 via the peer.
fn azure_over_https(pki: &Pki) -> (Fake, TlsFront) {
    let fake = Fake::start();
    fake.add_table(
        "rt1",
        vec![FakeRoute::appliance("to-dc", "10.99.0.0/16", "10.0.1.10")],
    );
    {
        let mut st = fake.state();
        st.resource = String::new();
        st.app = Some(("tenant-1".into(), "app-1".into(), "app-key-1".into()));
    }
    let front = TlsFront::start(pki, &fake.base);
    (fake, front)
}

#[test]
fn azure_over_https_logs_in_and_fails_over_with_requests_ca_bundle() {
    let pki = Pki::new();
    let (fake, front) = azure_over_https(&pki);
    let mut ha = clean()
        .with_env("CSR_HA_CLOUD", "azure")
        .with_env("CSR_HA_AZURE_ARM_ENDPOINT", &front.url)
        .with_env("CSR_HA_AZURE_LOGIN_ENDPOINT", &front.url)
        .with_env("REQUESTS_CA_BUNDLE", &pki.var("ca.pem"))
        // boto3's variable is not Azure's: a wrong one here must not matter.
        .with_env("AWS_CA_BUNDLE", &pki.var("other_ca.pem"));
    ha.start();
    ha.ok_starts(
        &format!(
            "create_node -i 1 -p azure -s {SUB} -g {GROUP} -t rt1 -n 10.0.1.20 \
             -r 10.99.0.0/16 -a app-1 -d tenant-1 -k app-key-1"
        ),
        "200: ",
    );
    let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert!(out.starts_with("200: node 1 peerFail: "), "{out}");
    assert_eq!(
        fake.route("rt1", "to-dc").hop_ip.as_deref(),
        Some("10.0.1.20")
    );
    assert!(
        fake.seen().iter().any(|s| s.is_login()),
        "the token came from the login endpoint, over HTTPS"
    );
    assert!(front.connections() > 0, "the front served the requests");

    // Without the variable the login endpoint's certificate is not trusted: at once, no retry.
    let mut ha = clean()
        .with_env("CSR_HA_CLOUD", "azure")
        .with_env("CSR_HA_AZURE_ARM_ENDPOINT", &front.url)
        .with_env("CSR_HA_AZURE_LOGIN_ENDPOINT", &front.url);
    ha.start();
    ha.ok_line(&format!(
        "create_node -i 1 -p azure -s {SUB} -g {GROUP} -t rt1 -n 10.0.1.20 \
         -a app-1 -d tenant-1 -k app-key-1"
    ));
    let (out, took) = failing_peer_fail(&ha);
    let host = front.url.trim_start_matches("https://");
    assert!(
        out.contains(&format!(
            "TLS: the certificate of {host} is not trusted (UnknownIssuer); behind a \
             TLS-inspecting proxy set REQUESTS_CA_BUNDLE or CSR_HA_CA_BUNDLE to its CA"
        )) && !out.contains("gave up after"),
        "{out}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

/// A service-account key file whose token endpoint is `token_uri`.
fn gcp_key_file(dir: &std::path::Path, token_uri: &str) -> String {
    let key = util::gcp_run::generate_key();
    let key = serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": key,
        "client_email": "csr-ha@proj-1.iam.gserviceaccount.test",
        "client_id": "1234567890",
        "token_uri": token_uri,
    });
    let path = dir.join("credentials.json");
    std::fs::write(&path, key.to_string()).expect("write key file");
    path.to_str().expect("utf-8").to_string()
}

/// A GCP server whose compute API and token endpoint are `front` (a key file); the metadata
/// server is the fake itself, plain HTTP.
fn gcp_ha(fake: &GcpFake, front: &TlsFront, env: &[(&str, &str)]) -> Ha {
    let ha = clean();
    let key = gcp_key_file(ha.scratch(), &format!("{}/token", front.url));
    let mut ha = env.iter().fold(
        ha.with_env("CSR_HA_CLOUD", "gcp")
            .with_env("CSR_HA_GCP_COMPUTE_ENDPOINT", &front.url)
            .with_env("GCE_METADATA_HOST", &fake.host)
            .with_env("GOOGLE_APPLICATION_CREDENTIALS", &key),
        |ha, (k, v)| ha.with_env(k, v),
    );
    ha.start();
    util::gcp_run::create_node_3(&ha);
    ha
}

/// The GCP fake holding the pair's routes, behind a TLS front.
fn gcp_over_https(pki: &Pki) -> (GcpFake, TlsFront) {
    let fake = GcpFake::start();
    seed_pair(&fake);
    let front = TlsFront::start(pki, &fake.url);
    (fake, front)
}

#[test]
fn gcp_over_https_gets_a_token_and_fails_over_with_requests_ca_bundle() {
    let pki = Pki::new();
    let (fake, front) = gcp_over_https(&pki);
    let ha = gcp_ha(&fake, &front, &[("REQUESTS_CA_BUNDLE", &pki.var("ca.pem"))]);
    let out = ha.ok("node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(
        out.starts_with("200: node 3 peerFail: deleted peer route route-b"),
        "{out}"
    );
    assert!(fake.route(PROJECT, "route-b").is_none());
    assert_eq!(
        fake.state().jwt_claims.len(),
        1,
        "the token came from the key file's token endpoint, over HTTPS"
    );
}

/// An AWS server with the instance role's credentials from `imds` (plain HTTP) and EC2 at
/// `moto` over HTTPS trusted through AWS_CA_BUNDLE, plus `env`; node 1 created.
fn aws_role_ha(moto: &Moto, vpc: &Vpc, imds: &FakeImds, pki: &Pki, env: &[(&str, &str)]) -> Ha {
    let mut ha = env.iter().fold(
        clean()
            .with_env("CSR_HA_CLOUD", "aws")
            .with_env("AWS_ENDPOINT_URL", &moto.endpoint)
            .with_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.endpoint)
            .with_env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .with_env("AWS_CA_BUNDLE", &pki.var("ca.pem"))
            .without_env("AWS_ACCESS_KEY_ID")
            .without_env("AWS_SECRET_ACCESS_KEY")
            .without_env("AWS_SESSION_TOKEN")
            .without_env("AWS_PROFILE"),
        |ha, (k, v)| ha.with_env(k, v),
    );
    ha.start();
    let (rtb, eni) = (&vpc.rtb, &vpc.eni_a);
    ha.ok_starts(
        &format!("create_node -i 1 -t {rtb} -rg us-east-1 -n {eni} -r {V4_ROUTE} -m primary"),
        "200: ",
    );
    ha
}

#[test]
fn the_cloud_api_goes_through_https_proxy_and_the_metadata_service_never_does() {
    let (pki, moto, vpc) = moto_over_https();
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    let proxy = ConnectProxy::start();
    let ha = aws_role_ha(
        moto,
        &vpc,
        &imds,
        pki,
        &[("HTTPS_PROXY", &proxy.url), ("HTTP_PROXY", &proxy.url)],
    );
    let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    assert!(out.starts_with("200: node 1 peerFail: "), "{out}");
    let ec2 = format!("CONNECT 127.0.0.1:{} HTTP/1.1", port_of(&moto.endpoint));
    let seen = proxy.seen();
    assert!(seen.contains(&ec2), "EC2 was tunnelled: {seen:?}");
    assert!(seen.iter().all(|line| *line == ec2), "only EC2: {seen:?}");
    assert!(
        imds.credential_fetches() >= 1,
        "the role's credentials came from the metadata service, directly"
    );
}

#[test]
fn no_proxy_in_either_letter_case_sends_the_cloud_api_direct() {
    let (pki, moto, vpc) = moto_over_https();
    let imds = FakeImds::start("2999-01-01T00:00:00Z");
    for no_proxy in ["NO_PROXY", "no_proxy"] {
        let proxy = ConnectProxy::start();
        let ha = aws_role_ha(
            moto,
            &vpc,
            &imds,
            pki,
            &[
                ("HTTPS_PROXY", &proxy.url),
                (no_proxy, "localhost,127.0.0.1"),
            ],
        );
        let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
        assert!(
            out.starts_with("200: node 1 peerFail: "),
            "{no_proxy}: {out}"
        );
        assert_eq!(proxy.seen(), Vec::<String>::new(), "{no_proxy}");
    }
}

#[test]
fn gcp_compute_goes_through_the_proxy_and_the_metadata_server_never_does() {
    let pki = Pki::new();
    let (fake, front) = gcp_over_https(&pki);
    let proxy = ConnectProxy::start();
    let ha = gcp_ha(
        &fake,
        &front,
        &[
            ("REQUESTS_CA_BUNDLE", &pki.var("ca.pem")),
            ("HTTPS_PROXY", &proxy.url),
            ("HTTP_PROXY", &proxy.url),
            // No key file: the token comes from the metadata server.
            ("GOOGLE_APPLICATION_CREDENTIALS", ""),
        ],
    );
    let out = ha.ok("node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(out.starts_with("200: node 3 peerFail: "), "{out}");
    let compute = format!("CONNECT 127.0.0.1:{} HTTP/1.1", port_of(&front.url));
    let seen = proxy.seen();
    assert!(seen.contains(&compute), "compute was tunnelled: {seen:?}");
    assert!(
        seen.iter().all(|line| *line == compute),
        "only compute: {seen:?}"
    );
    assert!(
        fake.state().tokens_issued >= 1,
        "the metadata server gave the token"
    );
    assert!(fake.state().jwt_claims.is_empty(), "no key file was used");
}

/// How long `node_event -i 1 -e peerFail` takes to report an untrusted certificate (moto over
/// HTTPS, no CA variable): was 25.7 s and 14 tries. Not a pass/fail test: run
/// `cargo test --release --test tls -- --ignored --nocapture bench_` and see BENCHMARKS.md.
#[test]
#[ignore]
fn bench_certificate_error_latency() {
    let (_, moto, vpc) = moto_over_https();
    let ha = aws_ha(moto, &[]);
    ha.ok_line(&format!(
        "create_node -i 1 -t {} -rg us-east-1 -n {} -m primary",
        vpc.rtb, vpc.eni_a
    ));
    let mut took: Vec<Duration> = (0..20).map(|_| failing_peer_fail(&ha).1).collect();
    took.sort();
    println!(
        "certificate error reported by node_event, 20 runs: p50 {:?}, max {:?}",
        took[10], took[19]
    );
}
