//! `ha_api -c status [--json]`: the whole service in one answer — the server, its queue, its
//! counters, every node with its last event and last dry run, the cached credentials, the AWS
//! metadata version they say is in use, and the certificate roots of each cloud.
//!
//! The server answers it from its poll loop (only the loop sees the event manager's queue);
//! the client renders text for people or, with `--json`, one object for scripts:
//!
//! ```text
//! {"server":  {"pid","version","uptimeSeconds","cloud","haDir","protocolVersion",
//!              "awsMetadata": "IMDSv2"|"IMDSv1"|null, "roots": {"aws","azure","gcp"}},
//!  "queue":   {"running","waiting","jobs":[{"table","action","nodes","state","ageSeconds"}]},
//!  "counters":{"badFrames","lateRequestsDropped","eventsRun","eventsFailed","dryRuns"},
//!  "nodes":   [{"index","provider","mode","table","route",<parameters>,"lastEvent","lastCheck",
//!              "credential" (Azure nodes: which credential it signs in with, never a key)}],
//!  "credentials":[{"kind","expiresInSeconds"}]}
//! ```
//!
//! `lastEvent` and `lastCheck` are `null` or `{"event","time","ok","text","durationMs",
//! "ageSeconds"}`; a `199` warning is `ok: true`. The exit code is 0 when the server answers and
//! no node's last event or last check failed, 1 otherwise, 3 when no server answers.

use std::time::SystemTime;

use serde_json::{json, Value as Json};

use super::run;
use super::show_node::node_json;
use super::State;
use crate::node::LastEvent;
use crate::protocol::{NodeView, Response};
use crate::view::{CredentialView, JobView, ServiceView};

/// The server's answer: the view, under a headline that fails when a node's last event or
/// last check did.
pub fn apply(state: &State, jobs: &[JobView]) -> Response {
    let now = SystemTime::now();
    let nodes: Vec<NodeView> = state
        .db
        .nodes()
        .map(|node| NodeView {
            credential: credential_of(node),
            ..super::show_node::view(state, node)
        })
        .collect();
    let failed: Vec<String> = nodes
        .iter()
        .filter(|v| {
            [&v.last_event, &v.last_check]
                .into_iter()
                .flatten()
                .any(|last| !last.ok())
        })
        .map(|v| v.node.index.to_string())
        .collect();
    let credentials = crate::cloud::token_cache::TokenCache::of(&state.dir)
        .entries()
        .into_iter()
        .map(|(kind, until)| CredentialView {
            kind,
            expires_in_secs: until.duration_since(now).map_or(0, |d| d.as_secs()),
        })
        .collect();
    let view = ServiceView {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: state.started_at.elapsed().as_secs(),
        cloud: state
            .dir
            .provider()
            .map_or_else(|e| format!("unknown ({e})"), |p| p.to_string()),
        ha_dir: state.dir.root().display().to_string(),
        protocol_version: crate::protocol::VERSION,
        jobs: jobs.to_vec(),
        bad_frames: state.bad_frames,
        late_requests_dropped: state.stale_requests,
        events_run: state.events_run,
        events_failed: state.events_failed,
        dry_runs: state.dry_runs,
        nodes,
        credentials,
        roots: roots(),
        now_unix: crate::timestamp::unix_secs(now),
    };
    let mut response = if failed.is_empty() {
        Response::ok(format!(
            "HA server is running, {} node(s), none failed its last event or check",
            view.nodes.len()
        ))
    } else {
        Response::bad(format!(
            "HA server is running; node(s) {} failed their last event or check",
            failed.join(", ")
        ))
    };
    response.service = Some(Box::new(view));
    response
}

/// The roots each cloud's client uses in this (the server's) environment.
fn roots() -> Vec<(String, String)> {
    use crate::cloud::http::{system_roots::Roots, Service};
    let env = |name: &str| std::env::var(name).ok();
    [
        ("AWS", Service::Aws),
        ("Azure", Service::Azure),
        ("GCP", Service::Gcp),
    ]
    .into_iter()
    .map(|(cloud, service)| (cloud.to_string(), Roots::of(service, &env).to_string()))
    .collect()
}

/// The AWS metadata version the cached credentials say is in use: `IMDSv1` while the fallback
/// is remembered (the token reply did not come), `IMDSv2` while a token is; else none.
fn aws_metadata(credentials: &[CredentialView]) -> Option<&'static str> {
    use crate::cloud::aws::IMDS_V1_KIND;
    let has = |kind: &str| credentials.iter().any(|c| c.kind == kind);
    if has(IMDS_V1_KIND) {
        Some("IMDSv1")
    } else if has("aws-imds-token") {
        Some("IMDSv2")
    } else {
        None
    }
}

/// Which credential `node` signs in with, where the cloud has a choice the router keeps
/// (Azure: its own app, the default app, or the managed identity).
fn credential_of(node: &crate::node::Node) -> Option<String> {
    (node.provider == crate::node::Provider::Azure)
        .then(|| crate::cloud::azure::credential_in_use(node))
}

/// The `--json` form: one object, alone on stdout.
pub fn render_json(response: &Response) -> String {
    let Some(view) = &response.service else {
        return json!({"code": response.status.code(), "message": response.render()}).to_string();
    };
    let running = view.jobs.iter().filter(|j| j.running).count();
    let jobs: Vec<Json> = view
        .jobs
        .iter()
        .map(|j| {
            json!({
                "table": j.table,
                "action": j.action,
                "nodes": j.nodes,
                "state": if j.running { "running" } else { "waiting" },
                "ageSeconds": j.age_ms as f64 / 1000.0,
            })
        })
        .collect();
    let roots: serde_json::Map<String, Json> = view
        .roots
        .iter()
        .map(|(cloud, roots)| (cloud.to_ascii_lowercase(), roots.as_str().into()))
        .collect();
    let doc = json!({
        "server": {
            "pid": view.pid,
            "version": view.version,
            "uptimeSeconds": view.uptime_secs,
            "cloud": view.cloud,
            "haDir": view.ha_dir,
            "protocolVersion": view.protocol_version,
            "awsMetadata": aws_metadata(&view.credentials),
            "roots": roots,
        },
        "queue": {"running": running, "waiting": view.jobs.len() - running, "jobs": jobs},
        "counters": {
            "badFrames": view.bad_frames,
            "lateRequestsDropped": view.late_requests_dropped,
            "eventsRun": view.events_run,
            "eventsFailed": view.events_failed,
            "dryRuns": view.dry_runs,
        },
        "nodes": view.nodes.iter().map(|n| node_json(n, view.now_unix)).collect::<Vec<_>>(),
        "credentials": view.credentials.iter().map(|c| json!({
            "kind": c.kind,
            "expiresInSeconds": c.expires_in_secs,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// `1 h 02 min`, `3 min 05 s`, `12 s`.
fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, secs % 3600 / 60),
    }
}

fn last_text(name: &str, last: Option<&LastEvent>, now_unix: u64) -> String {
    match last {
        None => format!("    {name:10} none\n"),
        Some(last) => {
            let age = last
                .age_secs_at(now_unix)
                .map_or_else(String::new, |a| format!(" ({} ago)", duration(a)));
            format!(
                "    {name:10} {} at {}{age}, took {} ms: {}\n",
                last.event, last.time, last.duration_ms, last.outcome
            )
        }
    }
}

/// The text form, for people.
pub fn render_text(response: &Response) -> String {
    let mut out = format!("{}\n", response.render());
    let Some(v) = &response.service else {
        return out;
    };
    out.push_str(&format!(
        "server       pid {}, csr-ha {}, up {}, cloud {}, {}, protocol {}\n",
        v.pid,
        v.version,
        duration(v.uptime_secs),
        v.cloud,
        v.ha_dir,
        v.protocol_version
    ));
    let running = v.jobs.iter().filter(|j| j.running).count();
    out.push_str(&format!(
        "queue        {running} running, {} waiting\n",
        v.jobs.len() - running
    ));
    for j in &v.jobs {
        let nodes: Vec<String> = j.nodes.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "    {:8} {} on {} for node(s) {}, {:.1} s\n",
            if j.running { "running" } else { "waiting" },
            j.action,
            j.table,
            nodes.join(","),
            j.age_ms as f64 / 1000.0
        ));
    }
    out.push_str(&format!(
        "counters     {} events run ({} failed), {} dry runs, {} bad frames, {} late requests dropped\n",
        v.events_run, v.events_failed, v.dry_runs, v.bad_frames, v.late_requests_dropped
    ));
    out.push_str(&format!("nodes        {}\n", v.nodes.len()));
    for n in &v.nodes {
        let node = &n.node;
        let route = node
            .route()
            .map_or_else(|| "all routes".to_string(), |r| r.to_string());
        out.push_str(&format!(
            "  node {} {}, {}, {route}\n",
            node.index,
            node.mode(),
            node.route_table_id()
        ));
        if let Some(credential) = &n.credential {
            out.push_str(&format!("    {:10} {credential}\n", "credential"));
        }
        out.push_str(&last_text("lastEvent", n.last_event.as_ref(), v.now_unix));
        out.push_str(&last_text("lastCheck", n.last_check.as_ref(), v.now_unix));
    }
    if v.credentials.is_empty() {
        out.push_str("credentials  none cached\n");
    } else {
        out.push_str(&format!("credentials  {} cached\n", v.credentials.len()));
        for c in &v.credentials {
            out.push_str(&format!(
                "    {:16} used for {} more\n",
                c.kind,
                duration(c.expires_in_secs)
            ));
        }
    }
    match aws_metadata(&v.credentials) {
        Some("IMDSv1") => out.push_str(
            "metadata     AWS IMDSv1 (no IMDSv2 token: its reply did not come or was refused)\n",
        ),
        Some(version) => out.push_str(&format!("metadata     AWS {version}\n")),
        None => {}
    }
    out.push_str("trust roots\n");
    for (cloud, roots) in &v.roots {
        out.push_str(&format!("    {cloud} {roots}\n"));
    }
    out
}

/// `ha_api -c status [--json]`. With `--json` stdout holds one JSON object on every path: the
/// status, the server's refusal (`{"code": 400, "message": …}`), or, when no answer came,
/// `{"error": "HA server is not running …", "exit": 3}` (the `400:` line then goes to stderr).
pub fn main(dir: &crate::paths::HaDir, json: bool) -> std::process::ExitCode {
    use crate::protocol::Command;
    if !json {
        return run::send_and_print(dir, Command::Status, render_text);
    }
    let wait = crate::client::wait_for(&Command::Status);
    match crate::client::request(dir, Command::Status, wait) {
        Ok(response) => {
            crate::outln!("{}", render_json(&response));
            run::exit_of(&response)
        }
        Err(e) => {
            let exit = run::exit_of_client_error(&e);
            eprintln!(
                "{}",
                crate::protocol::Line::status(crate::protocol::Status::Failed, e.to_string())
            );
            crate::outln!("{}", json!({"error": e.to_string(), "exit": exit}));
            std::process::ExitCode::from(exit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::show_node::last_json;

    #[test]
    fn the_metadata_version_is_the_one_the_cache_holds() {
        let creds = |kinds: &[&str]| -> Vec<CredentialView> {
            kinds
                .iter()
                .map(|k| CredentialView {
                    kind: k.to_string(),
                    expires_in_secs: 60,
                })
                .collect()
        };
        assert_eq!(aws_metadata(&creds(&["aws-role"])), None);
        assert_eq!(
            aws_metadata(&creds(&["aws-imds-token", "aws-role"])),
            Some("IMDSv2")
        );
        assert_eq!(
            aws_metadata(&creds(&["aws-imds-v1", "aws-role"])),
            Some("IMDSv1")
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(185), "3 min 05 s");
        assert_eq!(duration(3720), "1 h 02 min");
    }

    #[test]
    fn a_warning_is_ok_and_a_failure_is_not() {
        let last = |outcome: &str| LastEvent {
            event: "peerFail".into(),
            time: "2026-12-06 01:00:00".into(),
            outcome: outcome.into(),
            duration_ms: 4,
            unix: 100,
        };
        let warned = last_json(Some(&last("199: not proven")), 160);
        assert_eq!(warned["ok"], true);
        assert_eq!(warned["ageSeconds"], 60);
        assert_eq!(last_json(Some(&last("400: denied")), 160)["ok"], false);
        assert_eq!(last_json(None, 160), Json::Null);
    }
}
