//! `ha_api -c status --json` is one JSON object on stdout on every path, a server that does not
//! answer included; the exit code says what happened.

use crate::util;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::Ha;

fn json_of(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

#[test]
fn no_server_is_still_one_json_object_with_exit_3() {
    let ha = Ha::new();
    let out = ha.run("ha_api", &["-c", "status", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc = json_of(&out.stdout);
    assert_eq!(doc["exit"], 3, "{doc}");
    let error = doc["error"].as_str().expect("error is a string");
    assert!(error.starts_with("HA server is not running"), "{error}");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("400: HA server is not running"),
        "people still read the 400 line on stderr"
    );
}

#[test]
fn a_server_that_does_not_answer_is_one_json_object_with_exit_3() {
    let ha = Ha::started();
    let pid = Pid::from_raw(ha.server_pid() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let out = ha.run_env(
        "ha_api",
        &["-c", "status", "--json"],
        &[("CSR_HA_TIMEOUT", "0.5")],
    );
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    assert_eq!(out.status.code(), Some(3));
    let doc = json_of(&out.stdout);
    assert_eq!(doc["exit"], 3, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("HA server did not answer within 0.5 s")),
        "{doc}"
    );
    // And when it answers: the status object itself.
    let out = ha.run("ha_api", &["-c", "status", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(json_of(&out.stdout)["server"]["pid"].is_number());
}
