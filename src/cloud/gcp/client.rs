//! The Compute Engine v1 REST API as the provider uses it, and Cloud Resource Manager's
//! `testIamPermissions`: requests, answers, operation polling, error bodies.
//!
//! ```text
//! GET    {compute}/compute/v1/projects/{p}/global/routes/{name}
//! DELETE {compute}/compute/v1/projects/{p}/global/routes/{name}?requestId={uuid}
//! POST   {compute}/compute/v1/projects/{p}/global/routes?requestId={uuid}
//!        {"name":"route-a","network":"https://www.googleapis.com/compute/v1/projects/{p}/global/networks/{vpc}",
//!         "destRange":"10.99.0.0/16","nextHopIp":"10.0.1.20","priority":100}
//! POST   {compute}/compute/v1/projects/{p}/global/operations/{op}/wait   (until "status":"DONE")
//! POST   {resource manager}/v3/projects/{p}:testIamPermissions
//!        {"permissions":["compute.routes.create","compute.routes.delete","compute.networks.updatePolicy"]}
//!        answer {"permissions":[…the subset granted…]}
//! errors {"error":{"code":403,"message":"Required 'compute.routes.delete' permission ...",
//!         "status":"PERMISSION_DENIED","errors":[{"reason":"forbidden","message":"..."}]}}
//! ```
//!
//! Every call sends `Accept: application/json`, as google-api-python-client does. Inserts and
//! deletes carry a fresh `requestId` (a UUID v4) per logical write, the same on every retry of
//! it: Compute answers a repeated id with the first request's operation instead of applying it
//! twice, so a write whose answer was lost to a dropped connection is sent again safely.
//! 429, a 403 `rateLimitExceeded` (Compute's throttling), 5xx and connection errors are retried
//! with backoff within the event's deadline; a 401 renews the token once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::GcpConfig;
use crate::cloud::http::{self, Client, Method, Request, Service};
use crate::cloud::{CloudError, Permission};
use crate::event_log::EventLog;
use crate::node::Cidr;

/// A route as the API shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LiveRoute {
    #[serde(default)]
    pub network: String,
    #[serde(default)]
    pub dest_range: String,
    pub next_hop_ip: Option<String>,
    next_hop_instance: Option<String>,
    next_hop_gateway: Option<String>,
    next_hop_ilb: Option<String>,
    next_hop_vpn_tunnel: Option<String>,
    next_hop_network: Option<String>,
    next_hop_peering: Option<String>,
    /// `uint32` in the API, but accept a string too.
    priority: Option<Value>,
}

impl LiveRoute {
    /// The next hop as a user would name it: the IP, else the last path segment of the
    /// instance, gateway, ILB, tunnel, network or peering it points at.
    pub fn hop(&self) -> String {
        if let Some(ip) = &self.next_hop_ip {
            return ip.clone();
        }
        [
            &self.next_hop_instance,
            &self.next_hop_gateway,
            &self.next_hop_ilb,
            &self.next_hop_vpn_tunnel,
            &self.next_hop_network,
            &self.next_hop_peering,
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|url| url.rsplit('/').next().unwrap_or(url).to_string())
        .unwrap_or_else(|| "(no next hop)".into())
    }

    /// The next hop when it is an IP address (the only kind this provider writes).
    pub fn next_hop(&self) -> Option<std::net::IpAddr> {
        self.next_hop_ip.as_deref().and_then(|ip| ip.parse().ok())
    }

    pub fn priority(&self) -> Option<u64> {
        match &self.priority {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn destination(&self) -> Option<Cidr> {
        self.dest_range.parse().ok()
    }

    /// `10.99.0.0/16 via 10.0.1.10`
    pub fn describe(&self) -> String {
        format!("{} via {}", self.dest_range, self.hop())
    }

    /// `projects/p/global/networks/v` out of a full or partial network URL.
    pub fn network_path(&self) -> &str {
        self.network
            .find("projects/")
            .map_or(self.network.as_str(), |i| &self.network[i..])
    }
}

/// Where the network URL in a route insert points: the fully-qualified form the description asks
/// for ("Fully-qualified URL of the network") and gcloud and the Python client send. It names the
/// resource, not the endpoint the request goes to, so it stays the same when
/// `$CSR_HA_GCP_COMPUTE_ENDPOINT` points elsewhere.
pub(super) const RESOURCE_BASE: &str = "https://www.googleapis.com/compute/v1";

/// One request, as [`ComputeClient::send`] performs it.
enum Call<'b> {
    Get,
    /// A delete carrying a `requestId`: sent again after a connection error.
    Delete,
    /// An insert carrying a `requestId`: sent again after a connection error.
    Insert(&'b Value),
    /// `operations/{op}/wait`: may block server-side, so it gets the rest of the deadline.
    Wait,
    /// A read-only POST (`testIamPermissions`).
    Ask(&'b Value),
}

/// A 2xx body, or the API's 404 (which callers may treat as "absent").
pub(super) enum Answer {
    Found(Value),
    NotFound(CloudError),
}

/// The Compute API (and Resource Manager) for one handler's run: one agent, one token source,
/// one deadline.
pub(super) struct ComputeClient {
    base: String,
    resource_manager: String,
    http: Client,
    pub tokens: auth::Tokens,
    deadline: Instant,
    /// The first credentials error, so the other nodes fail at once instead of retrying it.
    auth_failure: Option<CloudError>,
    /// The permissions granted per project and VPC, asked at most once per handler run.
    granted: BTreeMap<(String, String), Result<Vec<String>, CloudError>>,
}

impl ComputeClient {
    pub fn new(config: &GcpConfig, deadline: Instant) -> ComputeClient {
        ComputeClient {
            base: config.compute_endpoint.trim_end_matches('/').to_string(),
            resource_manager: config
                .resource_manager_endpoint
                .trim_end_matches('/')
                .to_string(),
            http: Client::new(Service::Gcp),
            tokens: auth::Tokens::new(config.token_source(), config.cache.clone()),
            deadline,
            auth_failure: None,
            granted: BTreeMap::new(),
        }
    }

    fn route_url(&self, project: &str, name: &str) -> String {
        format!(
            "{}/compute/v1/projects/{project}/global/routes/{name}",
            self.base
        )
    }

    /// The route, or `None` if the project has no route of that name.
    pub fn get_route(
        &mut self,
        project: &str,
        name: &str,
        log: &mut EventLog,
        index: u16,
    ) -> Result<Option<LiveRoute>, CloudError> {
        let started = Instant::now();
        let url = self.route_url(project, name);
        let answer = self.send(Call::Get, &url, &format!("GET route {name}"))?;
        let took = started.elapsed().as_millis();
        match answer {
            Answer::NotFound(_) => {
                log.line(
                    index,
                    &format!("Read route {name}: not in project {project} ({took} ms)"),
                );
                Ok(None)
            }
            Answer::Found(body) => {
                let route: LiveRoute = serde_json::from_value(body).map_err(|e| {
                    CloudError::Transport(format!(
                        "GET route {name}: the API answered with an unreadable route ({e})"
                    ))
                })?;
                let priority = route
                    .priority()
                    .map_or("(none)".to_string(), |p| p.to_string());
                log.line(
                    index,
                    &format!(
                        "Read route {name}: {} priority {priority} network {} ({took} ms)",
                        route.describe(),
                        route.network_path()
                    ),
                );
                Ok(Some(route))
            }
        }
    }

    /// Deletes a route and waits for the operation; returns the operation's name.
    pub fn delete_route(&mut self, project: &str, name: &str) -> Result<String, CloudError> {
        let what = format!("DELETE route {name}");
        let url = format!(
            "{}?requestId={}",
            self.route_url(project, name),
            request_id()
        );
        match self.send(Call::Delete, &url, &what)? {
            Answer::Found(op) => self.finish(project, op, &what),
            // Gone already (deleted by someone else meanwhile).
            Answer::NotFound(_) => Ok("none, already absent".into()),
        }
    }

    /// Inserts a route and waits for the operation; returns the operation's name.
    pub fn insert_route(&mut self, project: &str, body: &Value) -> Result<String, CloudError> {
        let name = body["name"].as_str().unwrap_or_default();
        let what = format!("INSERT route {name}");
        let url = format!(
            "{}/compute/v1/projects/{project}/global/routes?requestId={}",
            self.base,
            request_id()
        );
        match self.send(Call::Insert(body), &url, &what)? {
            Answer::Found(op) => self.finish(project, op, &what),
            Answer::NotFound(e) => Err(e),
        }
    }

    /// Which of `permissions` the credentials hold on `project`, as Cloud Resource Manager's
    /// `projects.testIamPermissions` answers (an absent list: none).
    pub fn granted(
        &mut self,
        project: &str,
        permissions: &[&str],
    ) -> Result<Vec<String>, CloudError> {
        let url = format!(
            "{}/v3/projects/{project}:testIamPermissions",
            self.resource_manager
        );
        let body = json!({ "permissions": permissions });
        let what = format!("testIamPermissions on project {project}");
        match self.send(Call::Ask(&body), &url, &what)? {
            Answer::Found(answer) => Ok(answer["permissions"]
                .as_array()
                .map(|granted| {
                    granted
                        .iter()
                        .filter_map(|p| p.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()),
            Answer::NotFound(e) => Err(e),
        }
    }

    /// Waits until `op` is DONE, within the deadline, and reports its error if it has one.
    fn finish(&mut self, project: &str, mut op: Value, what: &str) -> Result<String, CloudError> {
        let mut polls = 0u32;
        loop {
            let name = op["name"].as_str().unwrap_or_default().to_string();
            let status = op["status"].as_str().unwrap_or("(no status)").to_string();
            if status == "DONE" {
                return match operation_error(&op) {
                    Some(e) => Err(e),
                    None => Ok(name),
                };
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(CloudError::Transport(format!(
                    "{what}: the API answered with an operation without a usable name"
                )));
            }
            let still = || {
                CloudError::Transport(format!(
                    "{what}: operation {name} still {status} when the event's deadline came; see gcloud compute operations describe {name} --global --project {project}"
                ))
            };
            if polls > 0 {
                match http::backoff(polls - 1, self.deadline) {
                    Some(wait) => std::thread::sleep(wait),
                    None => return Err(still()),
                }
            }
            let url = format!(
                "{}/compute/v1/projects/{project}/global/operations/{name}/wait",
                self.base
            );
            op = match self.send(Call::Wait, &url, what) {
                Ok(Answer::Found(next)) => next,
                Ok(Answer::NotFound(e)) => return Err(e),
                Err(CloudError::Transport(_)) if !self.time_left() => return Err(still()),
                Err(e) => return Err(e),
            };
            polls += 1;
        }
    }

    fn time_left(&self) -> bool {
        Instant::now() + Duration::from_millis(100) < self.deadline
    }

    /// Sends one request with a fresh token through [`Client::send`] (429, 5xx and connection
    /// errors retried within the deadline: reads are safe to repeat, writes carry a
    /// `requestId`), renewing the token once on 401.
    fn send(&mut self, call: Call, url: &str, what: &str) -> Result<Answer, CloudError> {
        let service = match call {
            Call::Ask(_) => ("Cloud Resource Manager API", &self.resource_manager),
            _ => ("Compute API", &self.base),
        };
        let service = format!("GCP {} at {}", service.0, service.1);
        let mut renewed = false;
        loop {
            let request = match call {
                Call::Get => Request::get(url),
                Call::Delete => Request::new(Method::Delete, url),
                Call::Insert(body) | Call::Ask(body) => {
                    Request::new(Method::Post, url).json(body.to_string())
                }
                Call::Wait => Request::new(Method::Post, url).body(Vec::new()).long_poll(),
            }
            .header("Accept", "application/json")
            .retry_if(&throttled)
            .secret_header("Authorization", format!("Bearer {}", self.token()?));
            let reply = self.http.send(&request, self.deadline).map_err(|e| {
                CloudError::Transport(
                    e.unless_permanent(|e| format!("{what}: {service} unreachable: {e}")),
                )
            })?;
            match reply.status {
                200..=299 => {
                    return serde_json::from_str(&reply.body)
                        .map(Answer::Found)
                        .map_err(|e| {
                            CloudError::Transport(format!(
                                "{what}: the {service} answered HTTP {} with no JSON ({e})",
                                reply.status
                            ))
                        })
                }
                401 if !renewed => {
                    self.tokens.forget();
                    renewed = true;
                }
                404 => return Ok(Answer::NotFound(reply.error("GCP", parse_error))),
                _ => return Err(reply.error("GCP", parse_error)),
            }
        }
    }

    fn token(&mut self) -> Result<String, CloudError> {
        if let Some(e) = &self.auth_failure {
            return Err(e.clone());
        }
        self.tokens
            .get(self.deadline)
            .map(|token| token.expose().to_string())
            .inspect_err(|e| self.auth_failure = Some(e.clone()))
    }
}

/// What a dry run asks of testIamPermissions: every permission the provider's writes need.
pub(super) const ASKED: [&str; 3] = [
    "compute.routes.create",
    "compute.routes.delete",
    "compute.networks.updatePolicy",
];
/// What deleting a route needs.
pub(super) const DELETE: &[&str] = &["compute.routes.delete"];
/// What inserting a route into a network needs.
pub(super) const INSERT: &[&str] = &["compute.routes.create", "compute.networks.updatePolicy"];

impl ComputeClient {
    /// Whether these credentials hold every one of `needed` in `project`: [`ASKED`] is asked of
    /// testIamPermissions once per project and VPC per handler run (node `index`'s log says
    /// the answer), and each node judged on what its own plan needs.
    pub fn permission(
        &mut self,
        project: &str,
        vpc: &str,
        needed: &[&str],
        log: &mut EventLog,
        index: u16,
    ) -> Permission {
        let key = (project.to_string(), vpc.to_string());
        if !self.granted.contains_key(&key) {
            let started = Instant::now();
            let answer = self.granted(project, &ASKED);
            let said = match &answer {
                Ok(granted) => format!("granted [{}]", granted.join(", ")),
                Err(e) => format!("no answer: {e}"),
            };
            log.line(
                index,
                &format!(
                    "testIamPermissions on project {project}: {said} ({} ms)",
                    started.elapsed().as_millis()
                ),
            );
            self.granted.insert(key.clone(), answer);
        }
        match &self.granted[&key] {
            Ok(granted) => {
                let missing: Vec<&str> = needed
                    .iter()
                    .copied()
                    .filter(|p| !granted.iter().any(|g| g == p))
                    .collect();
                if missing.is_empty() {
                    Permission::Permitted
                } else {
                    Permission::Denied(format!(
                        "{} in project {project} (testIamPermissions)",
                        missing.join(", ")
                    ))
                }
            }
            Err(CloudError::Transport(why)) => Permission::NotProven(why.clone()),
            Err(e) => {
                Permission::NotProven(format!("testIamPermissions on project {project}: {e}"))
            }
        }
    }
}

/// Compute's throttling: a 403 whose reason is `rateLimitExceeded` (or the older
/// `userRateLimitExceeded`), which its documentation says to retry after a moment; retried like
/// a 429. Any other 403 (a missing permission) is permanent.
fn throttled(reply: &http::Reply) -> bool {
    const REASONS: [&str; 2] = ["rateLimitExceeded", "userRateLimitExceeded"];
    reply.status == 403
        && serde_json::from_str::<Value>(&reply.body).is_ok_and(|body| {
            body["error"]["errors"].as_array().is_some_and(|errors| {
                errors
                    .iter()
                    .any(|e| e["reason"].as_str().is_some_and(|r| REASONS.contains(&r)))
            })
        })
}

/// A random (version 4) UUID, as Compute's `requestId` wants one: one per logical write, so a
/// retry of that write is recognised and not applied twice.
fn request_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: the clock still makes an id no earlier write used.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id()) << 64).to_be_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The API's error body: its status or first reason after the HTTP status as the code
/// (`403 PERMISSION_DENIED`) and its own message; `None` if the body is not the API's.
pub(super) fn parse_error(status: u16, body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Body {
        error: ErrorJson,
    }
    #[derive(Deserialize)]
    struct ErrorJson {
        message: Option<String>,
        status: Option<String>,
        #[serde(default)]
        errors: Vec<Detail>,
    }
    #[derive(Deserialize, Default)]
    struct Detail {
        reason: Option<String>,
        message: Option<String>,
    }
    let error = serde_json::from_str::<Body>(body).ok()?.error;
    let first = error.errors.into_iter().next().unwrap_or_default();
    let message = error.message.or(first.message)?;
    let code = match error.status.or(first.reason) {
        Some(kind) => format!("{status} {kind}"),
        None => status.to_string(),
    };
    Some((code, message))
}

/// A DONE operation's `error.errors[]`, if any, as one error.
fn operation_error(op: &Value) -> Option<CloudError> {
    let errors = op["error"]["errors"].as_array()?;
    if errors.is_empty() {
        return None;
    }
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let code = errors[0]["code"].as_str().unwrap_or("OPERATION_FAILED");
    let name = op["name"].as_str().unwrap_or("(unnamed)");
    Some(CloudError::Api {
        cloud: "GCP",
        status: None,
        code: code.to_string(),
        message: format!("{} (operation {name})", messages.join("; ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_the_apis_words() {
        let body = r#"{"error":{"code":403,"message":"Required 'compute.routes.delete' permission","status":"PERMISSION_DENIED","errors":[{"reason":"forbidden","message":"x"}]}}"#;
        let error = |status, body| http::Reply::for_test(status, body).error("GCP", parse_error);
        assert_eq!(
            error(403, body).to_string(),
            "GCP 403 PERMISSION_DENIED: Required 'compute.routes.delete' permission"
        );
        assert_eq!(
            error(502, "<html> Bad\n gateway </html>").to_string(),
            "GCP HTTP502: HTTP status 502: <html> Bad gateway </html>"
        );
    }

    #[test]
    fn operation_errors_are_joined() {
        let op = json!({"name":"op-1","status":"DONE","error":{"errors":[
            {"code":"RESOURCE_ALREADY_EXISTS","message":"a"},{"code":"X","message":"b"}]}});
        assert_eq!(
            operation_error(&op).map(|e| e.to_string()),
            Some("GCP RESOURCE_ALREADY_EXISTS: a; b (operation op-1)".into())
        );
        assert!(operation_error(&json!({"name":"op-1","status":"DONE"})).is_none());
    }

    #[test]
    fn request_ids_are_fresh_version_4_uuids() {
        let (a, b) = (request_id(), request_id());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4", "version nibble: {a}");
        assert!("89ab".contains(&a[19..20]), "variant nibble: {a}");
    }
}
