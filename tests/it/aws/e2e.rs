//! The AWS provider end to end, as a router would run it: `ha_server` with `CSR_HA_CLOUD=aws`,
//! the real client commands, the handler process, and moto on loopback as EC2. The endpoint and
//! keys are given to the server process only; nothing reaches a real AWS address.

use crate::util;

use util::aws_moto;

use aws_moto::{eni_of, Vpc, V4_OTHER, V4_ROUTE};
use util::Ha;

fn aws_ha(moto: &aws_moto::Moto) -> Ha {
    let mut ha = util::aws_run::aws_env(Ha::new(), &moto.endpoint)
        .with_env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    ha.start();
    ha
}

#[test]
fn node_event_fails_over_and_reverts_a_vpc_route() {
    let moto = aws_moto::shared();
    let ec2 = moto.client(aws_moto::any_keys());
    let vpc = Vpc::create(&ec2);
    let ha = aws_ha(moto);
    let (rtb, eni_a) = (&vpc.rtb, &vpc.eni_a);
    // Node 1: this router (eni_a), primary for V4_ROUTE. Node 2: secondary, every ENI route.
    let out = ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni_a} -r {V4_ROUTE} -m primary"
    ));
    assert!(
        out.starts_with("200: Successfully created new node with index 1"),
        "{out}"
    );
    let out = ha.ok_line(&format!(
        "create_node -i 2 -t {rtb} -rg us-east-1 -n {eni_a} -m secondary"
    ));
    assert!(out.starts_with("200: "), "{out}");

    let out = ha.ok("node_event", &["-i", "1", "-e", "peerFail"]);
    let expected = format!(
        "200: node 1 peerFail: {V4_ROUTE} in {} now via {}, ",
        vpc.rtb, vpc.eni_a
    );
    assert!(out.starts_with(&expected), "{out}");
    assert_eq!(
        eni_of(&ec2, &vpc.rtb, V4_ROUTE).as_deref(),
        Some(vpc.eni_a.as_str())
    );
    assert_eq!(
        eni_of(&ec2, &vpc.rtb, V4_OTHER).as_deref(),
        Some(vpc.eni_b.as_str()),
        "-r moves one route"
    );

    let out = ha.ok("node_event", &["-i", "2", "-e", "peerFail"]);
    assert!(
        out.contains(&format!("{V4_OTHER} in {} now via {}", vpc.rtb, vpc.eni_a)),
        "{out}"
    );
    let out = ha.ok("node_event", &["-i", "all", "-e", "verify"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("200: ")).count(),
        2,
        "{out}"
    );

    // A route that is not in the table: stored with a warning, and the event fails clearly.
    let out = ha.ok_line(&format!(
        "create_node -i 3 -t {rtb} -rg us-east-1 -n {eni_a} -r 10.55.0.0/16"
    ));
    assert!(
        out.starts_with(&format!(
            "199: Warning: Route 10.55.0.0/16 not found in Route Table {}",
            vpc.rtb
        )),
        "{out}"
    );
    let out = ha.expect(1, "node_event", &["-i", "3", "-e", "peerFail"]);
    assert!(
        out.starts_with(
            "400: node 3 peerFail: AWS InvalidParameterValue: There is no route defined for '10.55.0.0/16'"
        ),
        "{out}"
    );
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).unwrap_or_default();
    assert!(
        !log.contains("moto-does-not-check-this"),
        "secret key in csr_ha.log"
    );
}

#[test]
fn a_missing_route_table_reports_the_aws_error() {
    let moto = aws_moto::shared();
    let ha = aws_ha(moto);
    ha.ok_line("create_node -i 7 -t rtb-0abc1234 -rg us-east-1 -n eni-0a1b2c3d4e");
    let out = ha.expect(1, "node_event", &["-i", "7", "-e", "verify"]);
    assert_eq!(
        out.trim(),
        "400: node 7 verify: AWS InvalidRouteTableID.NotFound: The routeTable ID 'rtb-0abc1234' does not exist"
    );
}

/// The original's `validate_inputs`: `create_node` and `set_params` ask `DescribeRegions` for
/// `-rg` and `DescribeNetworkInterfaces` for `-n`, and a wrong one is a `199` in its words; the
/// node is stored either way.
#[test]
fn create_node_and_set_params_warn_of_an_eni_or_region_that_is_not_there() {
    let moto = aws_moto::shared();
    let vpc = Vpc::create(&moto.client(aws_moto::any_keys()));
    let ha = aws_ha(moto);
    let (rtb, eni_a) = (&vpc.rtb, &vpc.eni_a);
    let out = ha.ok_line(&format!(
        "create_node -i 1 -t {rtb} -rg us-east-1 -n {eni_a} -r {V4_ROUTE} -m primary"
    ));
    assert!(
        out.starts_with("200: Successfully created new node with index 1"),
        "an ENI that exists: no warning: {out}"
    );

    let wrong_eni = "eni-0123456789abcdef0";
    let out = ha.ok_line(&format!(
        "create_node -i 2 -t {rtb} -rg us-east-1 -n {wrong_eni} -r {V4_ROUTE}"
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!("199: Warning: ENI ID {wrong_eni} not found in region us-east-1").as_str(),
            "Please verify the node configuration",
            "Successfully created new node with index 2",
        ],
        "{out}"
    );
    assert!(ha.ok("show_node", &["-i", "2"]).contains(wrong_eni));

    // A route and an ENI both wrong: one line each.
    let out = ha.ok_line("set_params -i 2 -r 10.55.0.0/16");
    assert!(
        out.starts_with(&format!(
            "199: Warning: Route 10.55.0.0/16 not found in Route Table {rtb}\n\
             Warning: ENI ID {wrong_eni} not found in region us-east-1\n\
             Please verify the node configuration"
        )),
        "{out}"
    );

    let out = ha.ok_line("set_params -i 1 -rg us-east-9");
    assert!(
        out.starts_with(
            "199: Warning: Region us-east-9 not found\nPlease verify the node configuration"
        ),
        "{out}"
    );
    assert!(ha.ok("show_node", &["-i", "1"]).contains("us-east-9"));
}
