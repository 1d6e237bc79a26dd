//! What the benchmarks in `examples/` share: finding the binaries they drive, starting and
//! stopping a real `ha_server`, and the statistics and number formats of their tables.
//!
//! Included by each example as `#[path = "support/mod.rs"] mod support;` (cargo would build a
//! file directly in `examples/` as an example of its own).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use csr_ha::client;
use csr_ha::paths::HaDir;

/// The directory of `ha_server` and the client binaries: an example runs from
/// `target/<profile>/examples/`, the binaries it drives are one level up. Errs naming the first
/// of `needed` that is missing.
pub fn bins(needed: &[&str]) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this example: {e}"))?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("this example is not in target/<profile>/examples/")?
        .to_path_buf();
    match needed.iter().find(|name| !dir.join(name).is_file()) {
        Some(name) => Err(format!(
            "{} missing: run `cargo build --release --bins` first",
            dir.join(name).display()
        )),
        None => Ok(dir),
    }
}

/// Spawns `cmd` (an `ha_server` with its environment set) into `slot` and waits until it
/// answers in `dir`. The kernel sends the server SIGTERM if the bench dies without running its
/// `Drop` (a clean stop for the server). The child is in `slot` even on error, so the caller's
/// `Drop` still reaps it.
pub fn start_server(mut cmd: Command, dir: &HaDir, slot: &mut Option<Child>) -> Result<(), String> {
    // SAFETY: runs in the forked child before exec; prctl(2) is async-signal-safe and the
    // closure allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    let child = slot.insert(child);
    match client::await_started(dir, child, Duration::from_secs(10)) {
        Ok(_) => Ok(()),
        Err(client::StartError::Exited(status)) => {
            Err(format!("ha_server exited at start: {status}"))
        }
        Err(client::StartError::Silent(_)) => {
            Err("ha_server did not answer ping within 10 s".into())
        }
    }
}

/// Waits up to `within` for a server that was asked to stop; kills it after that. Always reaps
/// it. False when it had to be killed.
pub fn reap(child: &mut Child, within: Duration) -> bool {
    let until = Instant::now() + within;
    while !matches!(child.try_wait(), Ok(Some(_))) {
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The nearest-rank percentile of sorted samples, `fraction` in 0..=1; `None` when empty.
pub fn nearest_rank<T: Copy>(sorted: &[T], fraction: f64) -> Option<T> {
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `2`, or `1.25` when not a whole number.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// The `create_node` arguments of an AWS node with one `-r` route in `us-east-1`.
pub fn aws_node_args(index: &str, rtb: &str, eni: &str, route: &str, mode: &str) -> Vec<String> {
    words(&format!(
        "-i {index} -t {rtb} -rg us-east-1 -n {eni} -r {route} -m {mode}"
    ))
}

/// Arguments written as a user types them (`"-i 1 -e peerFail"`): split on white space.
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// The parameters of an EC2 `CreateRoute` or `ReplaceRoute` to a network interface.
pub fn route_params<'a>(rtb: &'a str, cidr: &'a str, eni: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("RouteTableId", rtb),
        ("DestinationCidrBlock", cidr),
        ("NetworkInterfaceId", eni),
    ]
}

/// One `node_event` process timed from its spawn.
pub struct Watched {
    /// When the poller first saw the event's write (`None` without a poller).
    pub seen: Option<Duration>,
    /// When the process had exited.
    pub exited: Duration,
    pub status: std::process::ExitStatus,
    pub stdout: String,
}

/// Spawns `cmd` (a `node_event`). With a poller, calls it and watches for the exit until both
/// the poller has returned true and the process has exited (a poller that only reads a file
/// should pause a little itself when it returns false); without one, blocks in wait(), so the
/// exit time is exact. Kills the process and errs after `limit`.
pub fn watch(
    mut cmd: Command,
    mut poller: Option<&mut dyn FnMut() -> bool>,
    limit: Duration,
) -> Result<Watched, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run node_event: {e}"))?;
    let (mut seen, mut exited) = (None, None);
    while let Some(poll) = poller.as_mut() {
        if seen.is_none() {
            if poll() {
                seen = Some(started.elapsed());
            }
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
        if exited.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
            exited = Some(started.elapsed());
        }
        if seen.is_some() && exited.is_some() {
            break;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the write was not seen within {limit:?}"));
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("wait for node_event: {e}"))?;
    let exited = exited.unwrap_or_else(|| started.elapsed());
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut stdout);
    }
    Ok(Watched {
        seen,
        exited,
        status,
        stdout,
    })
}
