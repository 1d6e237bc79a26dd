//! A full request FIFO is waited out: a client waits for room as long as its own timeout
//! allows, then says the FIFO stayed full. (How long a crowd takes is a benchmark,
//! `ha_bench --crowd`, not a test.)

use crate::util;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use csr_ha::protocol::{encode_request, Command, Request};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use util::Ha;

/// Stops the server and fills its request FIFO with frames of clients that are not waiting.
fn stop_and_fill(ha: &Ha) -> Pid {
    let pid = Pid::from_raw(ha.server_pid() as i32);
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let frame = encode_request(&Request::new(
        "nobody-1",
        Command::Ping,
        Duration::from_millis(100),
    ))
    .expect("frame");
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(ha.path("ha_server.fifo"))
        .expect("open fifo");
    let mut frames = 0;
    while fifo.write(&frame[..]).is_ok() {
        frames += 1;
    }
    assert!(frames > 0, "the FIFO took no frame");
    pid
}

#[test]
fn a_client_waits_for_room_in_a_full_fifo_within_its_timeout() {
    let ha = Ha::started();
    let pid = stop_and_fill(&ha);
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        kill(pid, Signal::SIGCONT).expect("SIGCONT");
    });
    let started = Instant::now();
    let out = ha.run_env("ha_api", &["-c", "ping"], &[("CSR_HA_TIMEOUT", "5")]);
    resume.join().expect("resume");
    assert!(
        out.status.success(),
        "after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_fifo_that_stays_full_fails_the_client_at_its_timeout_not_at_half_a_second() {
    let ha = Ha::started();
    let pid = stop_and_fill(&ha);
    let started = Instant::now();
    let out = ha.run_env("ha_api", &["-c", "ping"], &[("CSR_HA_TIMEOUT", "5")]);
    let took = started.elapsed();
    kill(pid, Signal::SIGCONT).expect("SIGCONT");
    assert_eq!(out.status.code(), Some(3));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("400: HA server did not take the request within 5.0 s: ")
            && stdout.contains("ha_server.fifo stayed full"),
        "{stdout}"
    );
    assert!(
        took > Duration::from_secs(2),
        "it gave up after {took:?}, before its timeout"
    );
    // The server, resumed, serves again.
    ha.ok("ha_api", &["-c", "ping"]);
}
