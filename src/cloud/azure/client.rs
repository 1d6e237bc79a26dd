//! [`ArmClient`]: Azure Resource Manager's requests and answers for one route table: the calls
//! themselves (bearer token from [`Tokens`], retries, `Accept: application/json` as the SDK sends
//! it), ARM's error body, every form a long-running write can take, and the Authorization
//! permissions list a dry run reads.
//!
//! ```text
//! write  PUT … → 200/201 + Azure-AsyncOperation: {arm}/…/operations/{id}  → GET until {"status":"Succeeded"}
//!              → 202 + Location: {arm}/…/operationResults/{id}          → GET while 202, done on 200/204
//!              → 200/201, no header, {"properties":{"provisioningState":"Updating"}}
//!                                                     → GET the resource until Succeeded/Failed/Canceled
//! error  {"error":{"code":"AuthorizationFailed","message":"The client … does not have authorization …"}}
//! probe  GET {table id}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01
//!        200 {"value":[{"actions":["Microsoft.Network/*"],"notActions":["Microsoft.Network/routeTables/delete"]}]}
//! ```

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::auth::Tokens;
use super::{parse_error, AzureConfig};
use crate::cloud::http::{self, Client, Method, Reply, Request, Service};
use crate::cloud::secret::Secret;
use crate::cloud::{CloudError, Permission};

/// The `Microsoft.Network` API version for Route Tables - Get and Routes - Create Or Update: a
/// stable (non-preview) version, the one Azure's own IaC tooling (azure-native 3.x) defaults to.
/// Later versions exist (2025-xx) but reach the sovereign clouds (azusgov, azchina) last; nothing
/// this provider reads or writes changed between them.
pub(super) const API_VERSION: &str = "2024-05-01";

/// The `Microsoft.Authorization` API version of Permissions - List For Resource.
pub(super) const PERMISSIONS_API_VERSION: &str = "2022-04-01";

/// The action a route PUT needs (a node with `-r`).
pub(super) const ROUTE_WRITE: &str = "Microsoft.Network/routeTables/routes/write";

/// The action a route table PUT needs (all-routes mode).
pub(super) const TABLE_WRITE: &str = "Microsoft.Network/routeTables/write";

/// The longest wait between polls of a long-running write, whatever `Retry-After` ARM sends:
/// a route update finishes in seconds and failover time matters more than a few extra reads.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// ARM's error code in an answer, if it has one.
pub(super) fn error_code(reply: &Reply) -> Option<String> {
    parse_error(reply.status, &reply.body).map(|(code, _)| code)
}

/// The ARM calls for one route table, with one token source and one deadline.
pub(super) struct ArmClient {
    /// The route table's name, for messages.
    pub name: String,
    /// The route table's resource URL, without `api-version`.
    pub table_url: String,
    /// The event's deadline: no call, retry or poll goes past it.
    pub deadline: Instant,
    http: Client,
    tokens: Tokens,
    config: AzureConfig,
}

impl ArmClient {
    pub fn new(
        name: String,
        table_url: String,
        tokens: Tokens,
        config: AzureConfig,
        deadline: Instant,
    ) -> ArmClient {
        ArmClient {
            name,
            table_url,
            deadline,
            http: Client::new(Service::Azure),
            tokens,
            config,
        }
    }

    /// `text` with the app key masked (a login endpoint may echo it).
    pub fn scrub(&self, text: &str) -> String {
        self.tokens.scrub(text)
    }

    /// `error` with the app key masked.
    pub fn scrub_error(&self, error: CloudError) -> CloudError {
        self.tokens.scrub_error(error)
    }

    fn token(&self) -> Result<Secret, CloudError> {
        self.tokens.token(self.deadline)
    }

    /// One ARM call with a bearer token; 429, 409 `AnotherOperationInProgress` and 5xx retried,
    /// a refused token replaced once. The answer may still be an error: see [`Self::api_error`].
    pub fn call(&self, method: Method, url: &str, what: &str) -> Result<Reply, CloudError> {
        self.call_with(method, url, what, &[], None)
    }

    /// [`Self::call`] with more headers (`If-Match`) and a JSON body.
    pub fn call_with(
        &self,
        method: Method,
        url: &str,
        what: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, CloudError> {
        if http::origin_of(url) != http::origin_of(&self.config.arm) {
            return Err(CloudError::Transport(format!(
                "Azure sent {what} to {}, which is not the Resource Manager endpoint {}; refusing to send it a token",
                http::origin_of(url),
                self.config.arm
            )));
        }
        // A table busy with another write answers 409 AnotherOperationInProgress: retried like
        // a 429, after its Retry-After.
        let busy = |r: &Reply| {
            r.status == 409 && error_code(r).as_deref() == Some("AnotherOperationInProgress")
        };
        let mut fresh_token_tried = false;
        loop {
            let token = self.token()?;
            let mut request = Request::new(method, url)
                .secret_header("Authorization", format!("Bearer {}", token.expose()))
                .header("Accept", "application/json")
                .retry_if(&busy);
            for (name, value) in headers {
                request = request.header(name, *value);
            }
            if let Some(body) = body {
                request = request.json(body.to_string());
            }
            let reply = self.http.send(&request, self.deadline).map_err(|e| {
                CloudError::Transport(e.reaching(&format!("Azure Resource Manager ({what})")))
            })?;
            if reply.status == 401 && !fresh_token_tried {
                fresh_token_tried = true;
                self.tokens.forget();
                continue;
            }
            log::debug!("azure: {what}: HTTP {}", reply.status);
            return Ok(reply);
        }
    }

    pub fn api_error(&self, reply: &Reply) -> CloudError {
        let CloudError::Api {
            cloud,
            status,
            code,
            message,
        } = reply.error("Azure", parse_error)
        else {
            unreachable!("Reply::error is always an Api error")
        };
        let message = match reply.status {
            429 => format!("{message} (still throttled when the event's deadline came)"),
            409 if code == "AnotherOperationInProgress" => {
                format!("{message} (table still busy when the event's deadline came)")
            }
            s if s >= 500 => format!("{message} (still failing when the event's deadline came)"),
            _ => message,
        };
        CloudError::Api {
            cloud,
            status,
            code,
            message,
        }
    }

    /// Follows a long-running write until it succeeds, fails, or the deadline comes. ARM says
    /// how to follow it with `Azure-AsyncOperation`, with 202 + `Location`, or, with neither, by
    /// a `provisioningState` that is not terminal yet: then `resource` (the URL written, with its
    /// api-version) is read until its state is, as the SDK's poller does.
    pub fn follow(&self, reply: Reply, what: &str, resource: &str) -> Result<(), CloudError> {
        if let Some(url) = reply.header("azure-asyncoperation") {
            return self.poll(url, reply.retry_after(), what, false);
        }
        if reply.status == 202 {
            if let Some(url) = reply.header("location") {
                return self.poll(url, reply.retry_after(), what, true);
            }
        }
        match provisioning_state(&reply.body) {
            None => Ok(()),
            Some(state) => match Provisioning::of(&state) {
                Provisioning::Succeeded => Ok(()),
                Provisioning::Ended => Err(ended(&reply, what, &state)),
                Provisioning::Running => self.poll_resource(resource, reply.retry_after(), what),
            },
        }
    }

    /// Reads the resource a write went to until its `provisioningState` is terminal.
    fn poll_resource(
        &self,
        url: &str,
        mut retry_after: Option<Duration>,
        what: &str,
    ) -> Result<(), CloudError> {
        let started = Instant::now();
        let mut state = "Updating".to_string();
        loop {
            self.pause(retry_after, what, || {
                format!("still {state} after {} s", started.elapsed().as_secs())
            })?;
            let reply = self.poll_read(url, what, || {
                format!("still {state} after {} s", started.elapsed().as_secs())
            })?;
            if reply.status != 200 {
                return Err(self.api_error(&reply));
            }
            retry_after = reply.retry_after();
            state = provisioning_state(&reply.body).ok_or_else(|| {
                CloudError::Transport(format!(
                    "Azure answered a read of what {what} wrote without a provisioningState"
                ))
            })?;
            match Provisioning::of(&state) {
                Provisioning::Succeeded => return Ok(()),
                Provisioning::Ended => return Err(ended(&reply, what, &state)),
                Provisioning::Running => {}
            }
        }
    }

    /// Sleeps `retry_after` (else the configured interval, at most [`MAX_POLL_INTERVAL`]) if
    /// that still leaves time for one more poll; otherwise the error saying where the write
    /// stood (`last`).
    fn pause(
        &self,
        retry_after: Option<Duration>,
        what: &str,
        last: impl FnOnce() -> String,
    ) -> Result<(), CloudError> {
        let wait = retry_after
            .unwrap_or(self.config.poll_interval)
            .min(MAX_POLL_INTERVAL);
        match http::wait_within(wait, self.deadline) {
            Some(wait) => {
                std::thread::sleep(wait);
                Ok(())
            }
            None => Err(self.unfinished(what, &last())),
        }
    }

    /// One read of a long-running write's state. One that could not be made because the
    /// deadline came meanwhile (a pause that ended late, retries) is the deadline's error, with
    /// where the write stood (`last`), not a network failure.
    fn poll_read(
        &self,
        url: &str,
        what: &str,
        last: impl FnOnce() -> String,
    ) -> Result<Reply, CloudError> {
        self.call(Method::Get, url, what).map_err(|e| {
            if http::out_of_time(self.deadline) {
                self.unfinished(what, &last())
            } else {
                e
            }
        })
    }

    /// `what` was not finished when the event's deadline came; `last` says where it stood.
    fn unfinished(&self, what: &str, last: &str) -> CloudError {
        CloudError::Transport(format!(
            "Azure had not finished {what} when the event's deadline came (it may still \
             complete: look at Route Table {} before retrying): {last}",
            self.name
        ))
    }

    /// Polls a long-running write until it is done, within the deadline: an
    /// `Azure-AsyncOperation` URL until its `status` is `Succeeded`, `Failed` or `Canceled`, or a
    /// `Location` URL (`location`) while it answers 202 (200, 201 or 204 mean done).
    fn poll(
        &self,
        url: &str,
        mut retry_after: Option<Duration>,
        what: &str,
        location: bool,
    ) -> Result<(), CloudError> {
        #[derive(Deserialize)]
        struct Status {
            status: Option<String>,
            error: Option<serde_json::Value>,
        }
        let mut last = "Accepted".to_string();
        loop {
            self.pause(retry_after, what, || format!("last status: {last}"))?;
            let reply = self.poll_read(url, what, || format!("last status: {last}"))?;
            retry_after = reply.retry_after();
            match (location, reply.status) {
                (true, 202) => continue,
                (true, 200 | 201 | 204) => return Ok(()),
                (false, 200) => {}
                _ => return Err(self.api_error(&reply)),
            }
            let status: Status = serde_json::from_str(&reply.body).map_err(|e| {
                CloudError::Transport(format!(
                    "Azure answered the status of {what} with something unreadable ({e})"
                ))
            })?;
            last = status.status.unwrap_or_default();
            match last.as_str() {
                "Succeeded" => return Ok(()),
                "Failed" | "Canceled" => {
                    let body = serde_json::json!({ "error": status.error }).to_string();
                    let (code, message) = parse_error(200, &body)
                        .filter(|(_, message)| !message.is_empty())
                        .unwrap_or_else(|| {
                            (format!("Operation{last}"), format!("{what} ended {last}"))
                        });
                    return Err(CloudError::Api {
                        cloud: "Azure",
                        status: None,
                        code,
                        message,
                    });
                }
                _ => {}
            }
        }
    }
}

/// Where a resource's `provisioningState` says a write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Provisioning {
    Succeeded,
    /// `Failed` or `Canceled`: the write will not happen.
    Ended,
    /// Anything else (`Updating`, `Creating`, `Accepted`…): still going.
    Running,
}

impl Provisioning {
    fn of(state: &str) -> Provisioning {
        match state.to_ascii_lowercase().as_str() {
            "succeeded" => Provisioning::Succeeded,
            "failed" | "canceled" | "cancelled" => Provisioning::Ended,
            _ => Provisioning::Running,
        }
    }
}

/// The error of a write whose resource ended `Failed` or `Canceled`: ARM's error if the answer
/// carries one (at the top or in `properties.error`), else `ProvisioningState<state>`.
fn ended(reply: &Reply, what: &str, state: &str) -> CloudError {
    let value: serde_json::Value = serde_json::from_str(&reply.body).unwrap_or_default();
    let error = value
        .get("error")
        .or_else(|| value.pointer("/properties/error"))
        .map(|e| serde_json::json!({ "error": e }).to_string())
        .and_then(|body| parse_error(reply.status, &body));
    let ended = format!("{what} ended with provisioningState {state}");
    let (code, message) = match error {
        Some((code, message)) if !message.is_empty() => (code, format!("{ended}: {message}")),
        Some((code, _)) => (code, ended),
        None => (format!("ProvisioningState{state}"), ended),
    };
    CloudError::Api {
        cloud: "Azure",
        status: Some(reply.status),
        code,
        message,
    }
}

fn provisioning_state(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/properties/provisioningState")?
        .as_str()
        .map(str::to_string)
}

/// Route Tables - Get, as far as the provider reads it.
#[derive(Deserialize)]
pub(super) struct TableBody {
    pub properties: Option<TableProperties>,
}

#[derive(Deserialize)]
pub(super) struct TableProperties {
    #[serde(default)]
    pub routes: Vec<RouteBody>,
}

/// One route of a table. `name` is optional in the schema (`Route` is a `SubResource`).
#[derive(Deserialize)]
pub(super) struct RouteBody {
    pub name: Option<String>,
    pub etag: Option<String>,
    #[serde(default)]
    pub properties: RouteProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct RouteProperties {
    pub address_prefix: Option<String>,
    pub next_hop_type: Option<String>,
    pub next_hop_ip_address: Option<String>,
}

/// One entry of Permissions - List For Resource: what a role assignment allows on the resource.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PermissionEntry {
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default)]
    pub not_actions: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionPage {
    #[serde(default)]
    value: Vec<PermissionEntry>,
    next_link: Option<String>,
}

/// Whether `pattern` (an `actions`/`notActions` entry) covers `action` as Azure matches them:
/// case-insensitive, each `*` standing for any characters (none included), anywhere.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let action: Vec<char> = action.to_lowercase().chars().collect();
    // Greedy glob with one backtrack point: the last `*` seen and where it started matching.
    let (mut p, mut a) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while a < action.len() {
        if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, a));
            p += 1;
        } else if p < pattern.len() && pattern[p] == action[a] {
            p += 1;
            a += 1;
        } else if let Some((sp, sa)) = star {
            p = sp + 1;
            a = sa + 1;
            star = Some((sp, sa + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether some permission allows `action`: one of its `actions` matches and none of its
/// `notActions` does (a `notActions` entry only narrows its own permission, as in Azure RBAC).
pub(super) fn allows(permissions: &[PermissionEntry], action: &str) -> bool {
    permissions.iter().any(|p| {
        p.actions.iter().any(|a| action_matches(a, action))
            && !p.not_actions.iter().any(|n| action_matches(n, action))
    })
}

impl ArmClient {
    /// Whether this router's token may do `action` on the table, from Permissions - List For
    /// Resource on the table (every page). An answer that is not a list (403: not allowed to ask,
    /// 404, a transport error) proves nothing either way.
    pub fn probe(&self, action: &str) -> Permission {
        let what = format!("listing the permissions on Route Table {}", self.name);
        let mut url = format!(
            "{}/providers/Microsoft.Authorization/permissions?api-version={PERMISSIONS_API_VERSION}",
            self.table_url
        );
        let mut permissions = Vec::new();
        loop {
            let reply = match self.call(Method::Get, &url, &what) {
                Ok(reply) if reply.status == 200 => reply,
                Ok(reply) => {
                    return Permission::NotProven(format!("{what}: {}", self.api_error(&reply)))
                }
                Err(e) => return Permission::NotProven(e.to_string()),
            };
            let page: PermissionPage = match serde_json::from_str(&reply.body) {
                Ok(page) => page,
                Err(e) => {
                    return Permission::NotProven(format!(
                        "Azure answered {what} with something that is not a permission list ({e})"
                    ))
                }
            };
            permissions.extend(page.value);
            match page.next_link.filter(|l| !l.is_empty()) {
                Some(next) => url = next,
                None => break,
            }
        }
        if allows(&permissions, action) {
            Permission::Permitted
        } else {
            Permission::Denied(format!("{action} on {}", self.name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_errors_keep_code_and_message() {
        let body = r#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' does not have authorization"}}"#;
        assert_eq!(
            parse_error(403, body),
            Some((
                "AuthorizationFailed".into(),
                "The client 'x' does not have authorization".into()
            ))
        );
        let error = |status, body| Reply::for_test(status, body).error("Azure", parse_error);
        assert_eq!(
            error(502, "Bad Gateway").to_string(),
            "Azure HTTP502: HTTP status 502: Bad Gateway"
        );
        assert!(error(502, "")
            .to_string()
            .contains("502 with no error body"));
    }
    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            http::origin_of("http://127.0.0.1:8080/subscriptions/x?a=b"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(http::origin_of("https://h.example"), "https://h.example");
        assert_ne!(
            http::origin_of("https://h.example.evil/x"),
            http::origin_of("https://h.example/x")
        );
    }

    #[test]
    fn actions_match_as_azure_rbac_does() {
        assert!(action_matches("*", ROUTE_WRITE));
        assert!(action_matches("Microsoft.Network/*", ROUTE_WRITE));
        assert!(action_matches(
            "microsoft.network/routetables/*/write",
            ROUTE_WRITE
        ));
        assert!(action_matches("Microsoft.Network/*/write", TABLE_WRITE));
        assert!(action_matches("*/write", ROUTE_WRITE));
        assert!(action_matches(
            "Microsoft.Network/routeTables/routes/write*",
            ROUTE_WRITE
        ));
        assert!(!action_matches(
            "Microsoft.Network/routeTables/read",
            TABLE_WRITE
        ));
        assert!(!action_matches("Microsoft.Network/*/read", ROUTE_WRITE));
        assert!(!action_matches("Microsoft.Compute/*", ROUTE_WRITE));
        assert!(!action_matches(
            "Microsoft.Network/routeTables/write",
            ROUTE_WRITE
        ));
        assert!(!action_matches("", ROUTE_WRITE));
        assert!(action_matches("a*b*c", "aXXbYYc") && !action_matches("a*b*c", "aXXcYYb"));
    }

    #[test]
    fn not_actions_narrow_only_their_own_permission() {
        let entry = |actions: &[&str], not: &[&str]| PermissionEntry {
            actions: actions.iter().map(|a| a.to_string()).collect(),
            not_actions: not.iter().map(|a| a.to_string()).collect(),
        };
        let contributor_but_routes = entry(&["*"], &["Microsoft.Network/routeTables/*/write"]);
        assert!(!allows(
            std::slice::from_ref(&contributor_but_routes),
            ROUTE_WRITE
        ));
        assert!(allows(
            std::slice::from_ref(&contributor_but_routes),
            TABLE_WRITE
        ));
        let network = entry(&["Microsoft.Network/routeTables/*"], &[]);
        assert!(allows(&[contributor_but_routes, network], ROUTE_WRITE));
        assert!(!allows(&[entry(&["*/read"], &[])], ROUTE_WRITE));
        assert!(!allows(&[], ROUTE_WRITE));
    }
}
