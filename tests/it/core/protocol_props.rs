//! Property tests of the wire format: frames round-trip, and no byte string makes a decoder panic.

use csr_ha::event::EventKind;
use csr_ha::node::{NodeIndex, Param, Provider};
use csr_ha::protocol::{
    decode_reply, decode_request, encode_reply, encode_request, Command, FrameReader, Request,
    Response, Status, Target, FRAME,
};
use proptest::prelude::*;

fn index() -> impl Strategy<Value = NodeIndex> {
    (1u16..=1023).prop_map(|i| NodeIndex::new(i).expect("in range"))
}

fn command() -> impl Strategy<Value = Command> {
    let params = proptest::collection::vec(("[ -~]{0,40}", 0usize..3), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(value, p)| ([Param::Route, Param::NextHop, Param::AppKey][p], value))
            .collect::<Vec<_>>()
    });
    prop_oneof![
        Just(Command::Ping),
        Just(Command::Stop),
        (index(), params.clone()).prop_map(|(index, params)| Command::CreateNode(
            csr_ha::protocol::NodeParams {
                index,
                provider: Provider::Azure,
                params
            }
        )),
        (index(), params).prop_map(|(index, params)| Command::SetParams(
            csr_ha::protocol::NodeParams {
                index,
                provider: Provider::File,
                params
            }
        )),
        index().prop_map(|index| Command::DeleteNode { index }),
        index().prop_map(|i| Command::ShowNode {
            target: Target::One(i)
        }),
        (
            index(),
            proptest::option::of(index()),
            0usize..3,
            proptest::bool::ANY
        )
            .prop_map(|(i, max, e, dry_run)| {
                Command::NodeEvent {
                    target: Target::One(i),
                    max,
                    event: [EventKind::PeerFail, EventKind::Revert, EventKind::Verify][e],
                    dry_run,
                }
            }),
        Just(Command::Status),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(reply_to in "[a-z0-9-]{1,40}", deadline_ms in any::<u64>(), command in command()) {
        let request = Request { reply_to, deadline_ms, command };
        let frame = encode_request(&request).expect("fits in a frame");
        prop_assert_eq!(frame.len(), FRAME);
        prop_assert_eq!(decode_request(&frame[..]), Ok(request));
    }

    #[test]
    fn replies_round_trip(status in prop_oneof![Just(Status::Ok), Just(Status::Warning), Just(Status::Failed)], text in "\\PC{0,200}", body in "\\PC{0,200}") {
        let response = Response::new(status, text).with_body(&body);
        prop_assert_eq!(decode_reply(&encode_reply(&response)), Ok(response));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let _ = decode_request(&bytes);
        let _ = decode_reply(&bytes);
        let mut reader = FrameReader::default();
        reader.push(&bytes);
        while reader.next_frame().is_some() {}
    }

    #[test]
    fn corrupted_frames_never_panic(pos in 0usize..FRAME, byte in any::<u8>(), command in command()) {
        let mut frame = encode_request(&Request::new("x", command, std::time::Duration::from_secs(5))).expect("fits");
        frame[pos] = byte;
        let _ = decode_request(&frame[..]);
    }

    #[test]
    fn a_good_frame_after_garbage_is_still_read(garbage in proptest::collection::vec(any::<u8>(), 0..5000)) {
        // A whole magic inside the garbage starts a (bad) frame of its own; that case is the
        // truncated-frame test's. Here: garbage without one must never cost the good frame.
        prop_assume!(!garbage.windows(4).any(|w| w == b"CSRH"));
        let good = encode_request(&Request::new("r", Command::Ping, std::time::Duration::from_secs(5))).expect("fits");
        let mut reader = FrameReader::default();
        reader.push(&garbage);
        let mut got = Vec::new();
        while let Some(r) = reader.next_frame() { got.push(r); }
        reader.push(&good[..]);
        while let Some(r) = reader.next_frame() { got.push(r); }
        let read: Vec<Request> = got.into_iter().flatten().collect();
        prop_assert_eq!(read.len(), 1);
        prop_assert_eq!(&read[0].command, &Command::Ping);
    }
}
