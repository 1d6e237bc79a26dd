//! How the AWS provider meets EC2 throttling, other errors and an unreachable endpoint, against
//! a loopback fake of EC2 that throttles on demand: retried with backoff where AWS says to, handed
//! back at once otherwise, never past the event's deadline.

use crate::util;

use csr_ha::event::EventKind;
use csr_ha::node::Provider;
use csr_ha::protocol::Status;
use csr_ha::work::Action;
use util::aws_fakes::FakeEc2;
use util::aws_moto;
use util::aws_run::{event, keys_config, node, one, primary_event, run_with, ENI_A, ENI_B, RTB};

#[test]
fn throttling_is_retried_with_backoff_until_it_succeeds() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    ec2.fail_next(2, 503, "RequestLimitExceeded");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = keys_config(&ec2.endpoint, aws_moto::any_keys());
    let out = primary_event(EventKind::PeerFail, &config, dir.path(), 1);
    util::assert_outcome(&out, Status::Ok);
    let actions: Vec<String> = ec2.calls().into_iter().map(|c| c.action).collect();
    assert_eq!(
        actions,
        [
            "DescribeRouteTables",
            "DescribeRouteTables",
            "DescribeRouteTables",
            "ReplaceRoute"
        ]
    );
    assert_eq!(ec2.eni_of("10.99.0.0/16").as_deref(), Some(ENI_A));
}

#[test]
fn other_errors_are_not_retried() {
    let ec2 = FakeEc2::start(RTB, &[("10.99.0.0/16", ENI_B)]);
    ec2.fail_next(1, 403, "UnauthorizedOperation");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = one(event(
        EventKind::Verify,
        &keys_config(&ec2.endpoint, aws_moto::any_keys()),
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    ));
    util::assert_outcome(&out, Status::Failed);
    assert_eq!(
        out.message,
        "AWS UnauthorizedOperation: Request limit exceeded."
    );
    assert_eq!(ec2.calls().len(), 1);
}

#[test]
fn an_unreachable_endpoint_is_retried_until_the_deadline() {
    let port = util::loopback::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = keys_config(&format!("http://127.0.0.1:{port}"), aws_moto::any_keys());
    let mut w = util::work(
        Action::Event(EventKind::PeerFail),
        Provider::Aws,
        dir.path(),
        vec![node(1, RTB, ENI_A, None, "primary")],
    );
    w.deadline_ms = 1_000;
    let out = one(run_with(&w, &config));
    util::assert_outcome(&out, Status::Failed);
    util::assert_starts(
        &out,
        &format!("cannot reach AWS at http://127.0.0.1:{port}"),
    );
    util::assert_says(&out, "gave up after");
}
