//! Azure route tables (user-defined routes) through Azure Resource Manager.
//!
//! ```text
//! read   GET {arm}/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/routeTables/{t}?api-version=2024-05-01
//!        200 {"name":"t","properties":{"routes":[{"name":"r1","properties":{
//!              "addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.10"}}]}}
//! write  PUT {arm}/…/routeTables/{t}/routes/{name}?api-version=2024-05-01       (node with -r)
//!        {"properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.20"}}
//!        If-Match: <route etag>                                        (verify only)
//!        PUT {arm}/…/routeTables/{t}?api-version=2024-05-01             (all-routes node: one PUT)
//!        {"location":"…","tags":{…},"properties":{"routes":[…every route…]}}   If-Match: <table etag>
//!        412 → read the table again, recompute, PUT again
//!        200/201 + Azure-AsyncOperation: {arm}/…/operations/{id}   → GET until {"status":"Succeeded"}
//!        202 + Location: {arm}/…/operationResults/{id}             → GET while 202, done on 200/204
//! error  {"error":{"code":"AuthorizationFailed","message":"The client … does not have authorization …"}}
//! ```
//!
//! Only `VirtualAppliance` routes point at a router, so only they get a next hop and may move;
//! routes to `Internet`, `VnetLocal`, gateways or `None` are read but never written.
//!
//! Tokens come from the VM's managed identity (IMDS) or, when the node has `-a`, from the OAuth2
//! client-credentials grant on the Azure AD v1 endpoint (`{login}/{tenant}/oauth2/token` with
//! `resource=`), the same endpoint and grant the original package used. The v1 endpoint was
//! chosen over v2 (`/oauth2/v2.0/token`, `scope=<arm>/.default`) so that both token sources ask
//! for the same `resource` and answer with the same `expires_on`. Tokens are kept in the shared
//! [`TokenCache`] until five minutes before they expire. A token or app key never appears in a log line,
//! an error, or `Debug` output: they live in [`Secret`], and every message built from a server's
//! answer is scrubbed of the app key before it leaves this module.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::http::{self, Client, Method, Reply, Request, Service};
use super::secret::{self, Secret};
use super::token_cache::{CacheKey, TokenCache};
use super::{fail_all, run_table, CloudError, Route, RouteTable, RouteWrite};
use crate::event_log::EventLog;
use crate::node::{AzureCloud, Cidr, Node, Param};
use crate::paths::HaDir;
use crate::percent;
use crate::work::{NodeOutcome, Work};

/// The `Microsoft.Network` API version for Route Tables - Get and Routes - Create Or Update: a
/// stable (non-preview) version, the one Azure's own IaC tooling (azure-native 3.x) defaults to.
/// Later versions exist (2025-xx) but reach the sovereign clouds (azusgov, azchina) last; nothing
/// this provider reads or writes changed between them.
pub const API_VERSION: &str = "2024-05-01";

/// The IMDS managed-identity token API version (the one Microsoft documents for this endpoint).
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// Where the provider talks to, resolved once per handler. Tests fill it by hand so they never
/// touch the process environment; [`AzureConfig::from_env`] is what [`run`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// Azure Resource Manager base URL, no trailing `/`.
    pub arm: String,
    /// Azure AD login base URL (the tenant id follows), no trailing `/`.
    pub login: String,
    /// Instance metadata service base URL, no trailing `/`.
    pub imds: String,
    /// The token audience asked for (`resource=`); ARM accepts tokens for this value.
    pub resource: String,
    /// How long to wait between polls of a long-running write when ARM sends no `Retry-After`.
    pub poll_interval: Duration,
    /// Where tokens are kept between events.
    pub cache: TokenCache,
}

/// The longest wait between polls of a long-running write, whatever `Retry-After` ARM sends:
/// a route update finishes in seconds and failover time matters more than a few extra reads.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A token is used until this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

impl AzureConfig {
    /// The public endpoints of `cloud` (`azure`, `azusgov`, `azchina`).
    pub fn for_cloud(cloud: AzureCloud) -> AzureConfig {
        let (arm, login) = match cloud {
            AzureCloud::Public => (
                "https://management.azure.com",
                "https://login.microsoftonline.com",
            ),
            AzureCloud::UsGov => (
                "https://management.usgovcloudapi.net",
                "https://login.microsoftonline.us",
            ),
            AzureCloud::China => (
                "https://management.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
        };
        AzureConfig {
            arm: arm.to_string(),
            login: login.to_string(),
            imds: "http://169.254.169.254".to_string(),
            resource: format!("{arm}/"),
            poll_interval: Duration::from_secs(1),
            cache: TokenCache::disabled(),
        }
    }

    /// [`AzureConfig::for_cloud`] with each endpoint overridable by `CSR_HA_AZURE_ARM_ENDPOINT`,
    /// `CSR_HA_AZURE_LOGIN_ENDPOINT` and `CSR_HA_AZURE_IMDS_ENDPOINT`. The token audience stays
    /// the cloud's: an overridden ARM endpoint (a proxy, a test fake) still wants ARM's tokens.
    /// Tokens are kept in `dir`'s credential cache.
    pub fn from_env(cloud: AzureCloud, dir: &HaDir) -> AzureConfig {
        let defaults = AzureConfig::for_cloud(cloud);
        AzureConfig {
            arm: http::endpoint(&["CSR_HA_AZURE_ARM_ENDPOINT"], &defaults.arm),
            login: http::endpoint(&["CSR_HA_AZURE_LOGIN_ENDPOINT"], &defaults.login),
            imds: http::endpoint(&["CSR_HA_AZURE_IMDS_ENDPOINT"], &defaults.imds),
            cache: TokenCache::of(dir),
            ..defaults
        }
    }
}

/// Runs `work` with endpoints from the environment (the cloud is the first node's `-p`).
pub fn run(work: &Work, deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    let config = first_node(work)
        .and_then(|node| {
            required(node, Param::Cloud)?;
            node.azure_cloud().ok_or_else(|| {
                CloudError::Local(format!(
                    "-p is not an Azure cloud: expected {}",
                    AzureCloud::ACCEPTED
                ))
            })
        })
        .map(|cloud| AzureConfig::from_env(cloud, &work.dir()));
    match config {
        Ok(config) => run_with(work, deadline, log, &config),
        Err(e) => fail_all(work, &e, log),
    }
}

/// Runs `work` against `config`'s endpoints: reads the table once, writes what differs.
pub fn run_with(
    work: &Work,
    deadline: Instant,
    log: &mut EventLog,
    config: &AzureConfig,
) -> Vec<NodeOutcome> {
    run_table(open(work, deadline, config.clone()), work, log)
}

/// Opens the route table named by the group's first node. No request is made yet: credentials
/// are fetched on the first read, so a `check` reports them as a warning.
fn open(work: &Work, deadline: Instant, config: AzureConfig) -> Result<AzureTable, CloudError> {
    let node = first_node(work)?;
    let subscription = required(node, Param::SubscriptionId)?;
    let group = required(node, Param::ResourceGroup)?;
    let name = required(node, Param::RouteTableName)?.to_string();
    let credential = Credential::of(node)?;
    let table_url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/routeTables/{}",
        config.arm,
        segment(subscription),
        segment(group),
        segment(&name)
    );
    Ok(AzureTable {
        location: format!("resource group {group}, subscription {subscription}"),
        name,
        table_url,
        arm: Client::new(Service::Azure),
        imds: Client::new(Service::Metadata),
        config,
        credential,
        deadline,
        raw: HashMap::new(),
        table: None,
        whole_table: work.nodes.iter().any(|n| n.route().is_none()),
    })
}

fn first_node(work: &Work) -> Result<&Node, CloudError> {
    work.nodes
        .first()
        .ok_or_else(|| CloudError::Local("no node to act on".into()))
}

fn required(node: &Node, param: Param) -> Result<&str, CloudError> {
    node.get(param).ok_or_else(|| {
        CloudError::Local(format!(
            "node {} has no {} ({}): set it with set_params",
            node.index,
            param.key(),
            param.flag()
        ))
    })
}

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
enum Credential {
    /// The VM's managed identity, from IMDS.
    ManagedIdentity,
    /// An Azure AD application (`-a`, `-d`, `-k`).
    App {
        tenant: String,
        app_id: String,
        key: Secret,
        /// The key as the node holds it (it may be URL-encoded), masked as well.
        given: Secret,
    },
}

impl Credential {
    fn of(node: &Node) -> Result<Credential, CloudError> {
        match node.get(Param::AppId) {
            None => Ok(Credential::ManagedIdentity),
            Some(app_id) => {
                let given = required(node, Param::AppKey)?;
                Ok(Credential::App {
                    tenant: required(node, Param::TenantId)?.to_string(),
                    app_id: app_id.to_string(),
                    key: Secret::new(decode_app_key(given)),
                    given: Secret::new(given),
                })
            }
        }
    }

    /// What decides the token, for its [`CacheKey`]: a digest of the key, never the key, so a
    /// changed key (`set_params -k`) never reuses a token obtained with the old one.
    fn cache_key(&self, config: &AzureConfig) -> String {
        match self {
            Credential::ManagedIdentity => format!("imds {} {}", config.imds, config.resource),
            Credential::App {
                tenant,
                app_id,
                key,
                ..
            } => {
                use sha2::Digest;
                let digest = hex::encode(sha2::Sha256::digest(key.expose().as_bytes()));
                format!(
                    "app {} {tenant} {app_id} {digest} {}",
                    config.login, config.resource
                )
            }
        }
    }

    fn scrub(&self, text: &str) -> String {
        match self {
            Credential::App { key, given, .. } => {
                secret::mask(text, &[key.expose(), given.expose()])
            }
            Credential::ManagedIdentity => text.to_string(),
        }
    }

    fn scrub_error(&self, error: CloudError) -> CloudError {
        match self {
            Credential::App { key, given, .. } => error.masked(&[key.expose(), given.expose()]),
            Credential::ManagedIdentity => error,
        }
    }
}

/// App keys pasted from the portal URL-encoded are recognised as the original package did: longer
/// than 44 characters (a raw key's length) and containing `%`. Decoded like Python's
/// `urllib.parse.unquote`: `%XX` becomes the byte, anything else stays as it is.
pub fn decode_app_key(key: &str) -> String {
    if key.chars().count() <= 44 || !key.contains('%') {
        return key.to_string();
    }
    percent::decode_lossy(key)
}

/// One Azure route table and what is needed to reach it.
struct AzureTable {
    name: String,
    /// `resource group g, subscription s`, for messages.
    location: String,
    table_url: String,
    arm: Client,
    imds: Client,
    config: AzureConfig,
    credential: Credential,
    deadline: Instant,
    /// Route name → its prefix as ARM holds it and its etag, as last read.
    raw: HashMap<String, RawRoute>,
    /// The table as last read (with its etag), for a whole-table write.
    table: Option<serde_json::Value>,
    /// A node acts on every route (no `-r`): the event's writes go out as one table PUT.
    whole_table: bool,
}

/// ARM's `{"error":{"code","message"}}` (or the same fields at the top level); `None` if the
/// body is not ARM's.
fn parse_error(_status: u16, body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Detail>,
        code: Option<String>,
        message: Option<String>,
    }
    let (code, message) = match serde_json::from_str::<Envelope>(body).ok()? {
        Envelope { error: Some(d), .. } => (d.code, d.message),
        Envelope { code, message, .. } => (code, message),
    };
    Some((code?, message.unwrap_or_default()))
}

/// ARM's error code in an answer, if it has one.
fn error_code(reply: &Reply) -> Option<String> {
    parse_error(reply.status, &reply.body).map(|(code, _)| code)
}

/// Percent-encodes one URL path segment (resource group names may hold `(`, `.`, non-ASCII).
fn segment(value: &str) -> String {
    percent::encode(value, percent::PATH_SEGMENT)
}

/// Seconds since the epoch, as a string or a number (IMDS sends strings, some clients numbers).
fn seconds(value: &Option<serde_json::Value>) -> Option<u64> {
    match value.as_ref()? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// How long a token with these `expires_on`/`expires_in` may be used from now.
fn token_lifetime(expires_on: Option<u64>, expires_in: Option<u64>, now_unix: u64) -> Duration {
    let lifetime = match (expires_on, expires_in) {
        (Some(on), _) if on > now_unix => Duration::from_secs(on - now_unix),
        (_, Some(secs)) => Duration::from_secs(secs),
        _ => Duration::ZERO,
    };
    lifetime.saturating_sub(TOKEN_MARGIN.min(lifetime / 2))
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    expires_on: Option<serde_json::Value>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The part of an OAuth error worth showing: AAD descriptions end in trace ids and timestamps.
fn oauth_error(reply: &Reply) -> String {
    match serde_json::from_str::<TokenBody>(&reply.body) {
        Ok(TokenBody {
            error: Some(error),
            error_description,
            ..
        }) => {
            let first = error_description
                .as_deref()
                .and_then(|d| d.lines().next())
                .unwrap_or("")
                .trim();
            if first.is_empty() {
                error
            } else {
                format!("{error}: {first}")
            }
        }
        _ => match reply.error("Azure", parse_error) {
            CloudError::Api { code, message, .. } => format!("{code}: {message}"),
            other => other.to_string(),
        },
    }
}

impl AzureTable {
    /// A bearer token, from the shared cache or fetched now.
    fn token(&self) -> Result<Secret, CloudError> {
        let key = self.token_key();
        if let Some((token, _)) = self.config.cache.get(&key) {
            return Ok(token);
        }
        let (token, lifetime) = self.fetch_token()?;
        if !lifetime.is_zero() {
            self.config
                .cache
                .put(&key, &token, SystemTime::now() + lifetime);
        }
        Ok(token)
    }

    fn token_key(&self) -> CacheKey {
        CacheKey::new("azure-token", &[&self.credential.cache_key(&self.config)])
    }

    /// Drops a token ARM refused (revoked, or the clock is off), so the next call fetches one.
    fn forget_token(&self) {
        self.config.cache.forget(&self.token_key());
    }

    fn fetch_token(&self) -> Result<(Secret, Duration), CloudError> {
        let (source, reply) = self.ask_for_token()?;
        self.token_from(&source, &reply)
    }

    /// Asks the managed identity (IMDS) or the login server (app credentials) for a token;
    /// returns who was asked, for messages, and the answer.
    fn ask_for_token(&self) -> Result<(String, Reply), CloudError> {
        let unreachable = |source: &str, e: http::SendError| {
            CloudError::Transport(
                self.credential
                    .scrub(&format!("cannot reach {source}: {e}")),
            )
        };
        let (source, reply) = match &self.credential {
            Credential::ManagedIdentity => {
                let url = format!(
                    "{}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={}",
                    self.config.imds,
                    percent::encode(&self.config.resource, percent::UNRESERVED)
                );
                let source = format!(
                    "the VM's managed identity (metadata service {})",
                    self.config.imds
                );
                // IMDS answers 404/410 while it starts: retried like a 429.
                let starting = |r: &Reply| [404, 410].contains(&r.status);
                let request = Request::get(&url)
                    .header("Metadata", "true")
                    .retry_if(&starting);
                let reply = self
                    .imds
                    .send(&request, self.deadline)
                    .map_err(|e| unreachable(&source, e))?;
                (source, reply)
            }
            Credential::App {
                tenant,
                app_id,
                key,
                ..
            } => {
                let url = format!("{}/{}/oauth2/token", self.config.login, segment(tenant));
                let request = Request::new(Method::Post, &url)
                    .header("Accept", "application/json")
                    .secret(key.expose())
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", app_id.as_str()),
                        ("client_secret", key.expose()),
                        ("resource", self.config.resource.as_str()),
                    ]);
                let source = format!(
                    "Azure AD app {app_id} in tenant {tenant} ({})",
                    self.config.login
                );
                let reply = self
                    .arm
                    .send(&request, self.deadline)
                    .map_err(|e| unreachable(&source, e))?;
                (source, reply)
            }
        };
        Ok((source, reply))
    }

    /// The token in `reply` and how long it may be used, or why there is none.
    fn token_from(&self, source: &str, reply: &Reply) -> Result<(Secret, Duration), CloudError> {
        let scrub = |s: &str| self.credential.scrub(s);
        if reply.status != 200 {
            let hint = match self.credential {
                Credential::ManagedIdentity => {
                    "; give the VM a managed identity allowed to write the route table, or give the node app credentials (-a -d -k)"
                }
                Credential::App { .. } => "; check the app id (-a), tenant (-d) and key (-k)",
            };
            return Err(CloudError::Auth(scrub(&format!(
                "no token from {source}: {}{hint}",
                oauth_error(reply)
            ))));
        }
        let body: TokenBody = serde_json::from_str(&reply.body).map_err(|e| {
            CloudError::Auth(format!(
                "no token from {source}: the answer is not a token ({e})"
            ))
        })?;
        let token = body.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            CloudError::Auth(format!(
                "no token from {source}: the answer has no access_token"
            ))
        })?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let lifetime = token_lifetime(seconds(&body.expires_on), seconds(&body.expires_in), now);
        log::debug!(
            "azure: token from {source}, usable for {} s",
            lifetime.as_secs()
        );
        Ok((Secret::new(token), lifetime))
    }

    /// One ARM call with a bearer token; 429, 409 `AnotherOperationInProgress` and 5xx retried,
    /// a refused token replaced once. The answer may still be an error: see [`Self::api_error`].
    fn arm_call(&self, method: Method, url: &str, what: &str) -> Result<Reply, CloudError> {
        self.arm_call_with(method, url, what, &[], None)
    }

    /// [`Self::arm_call`] with more headers (`If-Match`) and a JSON body.
    fn arm_call_with(
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
                .retry_if(&busy);
            for (name, value) in headers {
                request = request.header(name, *value);
            }
            if let Some(body) = body {
                request = request.json(body.to_string());
            }
            let reply = self.arm.send(&request, self.deadline).map_err(|e| {
                CloudError::Transport(format!("cannot reach Azure Resource Manager ({what}): {e}"))
            })?;
            if reply.status == 401 && !fresh_token_tried {
                fresh_token_tried = true;
                self.forget_token();
                continue;
            }
            log::debug!("azure: {what}: HTTP {}", reply.status);
            return Ok(reply);
        }
    }

    fn api_error(&self, reply: &Reply) -> CloudError {
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

    fn route_url(&self, name: &str) -> String {
        format!(
            "{}/routes/{}?api-version={API_VERSION}",
            self.table_url,
            segment(name)
        )
    }

    /// Follows a long-running write until it succeeds, fails, or the deadline comes.
    fn follow(&self, reply: Reply, what: &str) -> Result<(), CloudError> {
        if let Some(url) = reply.header("azure-asyncoperation") {
            return self.poll(url, reply.retry_after(), what, false);
        }
        if reply.status == 202 {
            if let Some(url) = reply.header("location") {
                return self.poll(url, reply.retry_after(), what, true);
            }
        }
        if provisioning_state(&reply.body).as_deref() == Some("Failed") {
            return Err(CloudError::Api {
                cloud: "Azure",
                status: Some(reply.status),
                code: "ProvisioningFailed".into(),
                message: format!(
                    "{what}: ARM accepted the write but the route's provisioningState is Failed"
                ),
            });
        }
        Ok(())
    }

    fn pause(
        &self,
        retry_after: Option<Duration>,
        what: &str,
        last: &str,
    ) -> Result<(), CloudError> {
        let wait = retry_after
            .unwrap_or(self.config.poll_interval)
            .min(MAX_POLL_INTERVAL);
        match http::wait_within(wait, self.deadline) {
            Some(wait) => {
                std::thread::sleep(wait);
                Ok(())
            }
            None => Err(CloudError::Transport(format!(
                "Azure had not finished {what} when the event's deadline came (last status: {last}); \
                 it may still complete: look at Route Table {} before retrying",
                self.name
            ))),
        }
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
            self.pause(retry_after, what, &last)?;
            let reply = self.arm_call(Method::Get, url, what)?;
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

fn provisioning_state(body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    value
        .pointer("/properties/provisioningState")?
        .as_str()
        .map(str::to_string)
}

#[derive(Deserialize)]
struct TableBody {
    properties: Option<TableProperties>,
}

#[derive(Deserialize)]
struct TableProperties {
    #[serde(default)]
    routes: Vec<RouteBody>,
}

#[derive(Deserialize)]
struct RouteBody {
    name: String,
    etag: Option<String>,
    #[serde(default)]
    properties: RouteProperties,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RouteProperties {
    address_prefix: Option<String>,
    next_hop_type: Option<String>,
    next_hop_ip_address: Option<String>,
}

/// An IP address as `std` writes it (`2001:DB8::A` → `2001:db8::a`), or as given if it is none.
fn canonical_ip(ip: String) -> String {
    ip.parse::<std::net::IpAddr>().map_or(ip, |a| a.to_string())
}

/// The body of a Route Tables - Create Or Update that applies `writes` to `table` as read, and
/// each write's result. Only what a client may set is sent back (location, tags, routes, BGP
/// propagation): read-only fields such as `subnets` and `provisioningState` are left out.
fn table_update(
    table: &serde_json::Value,
    writes: &[RouteWrite],
) -> (serde_json::Value, Vec<Result<(), CloudError>>) {
    use serde_json::{json, Value};
    let mut routes: Vec<Value> = table
        .pointer("/properties/routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let results = writes
        .iter()
        .map(|w| {
            let Some(route) = routes.iter_mut().find(|r| r["name"] == w.route.id.as_str()) else {
                return Err(CloudError::Local(format!(
                    "route {} ({}) is no longer in the table",
                    w.route.id, w.route.destination
                )));
            };
            let props = &mut route["properties"];
            let appliance = props["nextHopType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("VirtualAppliance"));
            let now = props["nextHopIpAddress"]
                .as_str()
                .filter(|_| appliance)
                .map(|ip| canonical_ip(ip.to_string()));
            if w.conditional && now != w.route.next_hop {
                return Err(CloudError::Changed { now });
            }
            props["nextHopType"] = json!("VirtualAppliance");
            props["nextHopIpAddress"] = json!(w.next_hop);
            Ok(())
        })
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .map(|r| {
            let p = &r["properties"];
            let mut props = json!({
                "addressPrefix": p["addressPrefix"],
                "nextHopType": p["nextHopType"],
            });
            if let Some(ip) = p.get("nextHopIpAddress") {
                props["nextHopIpAddress"] = ip.clone();
            }
            json!({ "name": r["name"], "properties": props })
        })
        .collect();
    let mut properties = json!({ "routes": routes });
    if let Some(bgp) = table.pointer("/properties/disableBgpRoutePropagation") {
        properties["disableBgpRoutePropagation"] = bgp.clone();
    }
    let mut body = json!({ "location": table["location"], "properties": properties });
    if let Some(tags) = table.get("tags") {
        body["tags"] = tags.clone();
    }
    (body, results)
}

/// What a write needs of a route as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawRoute {
    /// `addressPrefix` exactly as ARM holds it, so a write sends it back unchanged.
    prefix: String,
    /// The route's etag, for a conditional write's `If-Match`.
    etag: Option<String>,
}

/// The routes of a Route Tables - Get answer; each route's raw prefix and etag go into `raw`.
fn parse_routes(body: &str, raw: &mut HashMap<String, RawRoute>) -> Result<Vec<Route>, String> {
    let table: TableBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let routes = table.properties.map(|p| p.routes).unwrap_or_default();
    raw.clear();
    Ok(routes
        .into_iter()
        .map(|r| {
            let prefix = r.properties.address_prefix.unwrap_or_default();
            // Service tags (`AzureCloud`) are kept as written; they never match a -r CIDR.
            let destination = prefix
                .parse::<Cidr>()
                .map_or_else(|_| prefix.clone(), |c| c.to_string());
            let next_hop = match r.properties.next_hop_type.as_deref() {
                Some(t) if t.eq_ignore_ascii_case("VirtualAppliance") => {
                    r.properties.next_hop_ip_address.map(canonical_ip)
                }
                _ => None,
            };
            raw.insert(
                r.name.clone(),
                RawRoute {
                    prefix,
                    etag: r.etag,
                },
            );
            Route {
                destination,
                next_hop,
                id: r.name,
            }
        })
        .collect())
}

impl RouteTable for AzureTable {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Every error leaves through [`Credential::scrub_error`]: a login endpoint may echo the key.
    fn read(&mut self) -> Result<Vec<Route>, CloudError> {
        self.read_table()
            .map_err(|e| self.credential.scrub_error(e))
    }

    /// All-routes nodes: the whole table in one PUT ([`Self::put_table`]). Single-route nodes:
    /// one route PUT per write; a conditional write (`verify`) carries `If-Match` with the
    /// route's etag as read, and a 412 means it changed since and is not rewritten.
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let results = if self.whole_table && !writes.is_empty() {
            self.put_table(writes)
        } else {
            writes.iter().map(|w| self.put_route(w)).collect()
        };
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.credential.scrub_error(e)))
            .collect()
    }
}

impl AzureTable {
    fn read_table(&mut self) -> Result<Vec<Route>, CloudError> {
        let url = format!("{}?api-version={API_VERSION}", self.table_url);
        let what = format!("reading Route Table {}", self.name);
        let reply = self.arm_call(Method::Get, &url, &what)?;
        if reply.status == 404 && error_code(&reply).as_deref() == Some("ResourceNotFound") {
            return Err(CloudError::TableNotFound(format!(
                "{} ({})",
                self.name, self.location
            )));
        }
        if reply.status != 200 {
            return Err(self.api_error(&reply));
        }
        self.table = serde_json::from_str(&reply.body).ok();
        parse_routes(&reply.body, &mut self.raw).map_err(|e| {
            CloudError::Transport(format!(
                "Azure answered {what} with something that is not a route table ({e})"
            ))
        })
    }

    /// The whole table in one PUT carrying `If-Match` with the etag it was read with, one
    /// long-running operation followed to completion. A 412 means another writer changed the
    /// table meanwhile: it is read again, the writes recomputed on it (a conditional write whose
    /// route changed is dropped as [`CloudError::Changed`]) and sent again, within the deadline.
    fn put_table(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let what = format!("writing Route Table {}", self.name);
        let url = format!("{}?api-version={API_VERSION}", self.table_url);
        loop {
            let Some(table) = self.table.clone() else {
                let e = CloudError::Local(format!("Route Table {} was not read", self.name));
                return writes.iter().map(|_| Err(e.clone())).collect();
            };
            let (body, results) = table_update(&table, writes);
            if results.iter().all(Result::is_err) {
                return results;
            }
            let etag = table["etag"].as_str().map(str::to_string);
            let headers: Vec<(&str, &str)> =
                etag.iter().map(|e| ("If-Match", e.as_str())).collect();
            let body = body.to_string();
            let sent = self.arm_call_with(Method::Put, &url, &what, &headers, Some(&body));
            let outcome = match sent {
                Ok(reply) if reply.status == 412 => {
                    log::info!(
                        "azure: Route Table {} changed since it was read: reading it again",
                        self.name
                    );
                    match self.read_table() {
                        Ok(_) if http::wait_within(Duration::ZERO, self.deadline).is_some() => {
                            continue
                        }
                        Ok(_) => Err(CloudError::Transport(format!(
                            "Route Table {} kept changing until the event's deadline: not written",
                            self.name
                        ))),
                        Err(e) => Err(e),
                    }
                }
                Ok(reply) if (200..=202).contains(&reply.status) => self.follow(reply, &what),
                Ok(reply) => Err(self.api_error(&reply)),
                Err(e) => Err(e),
            };
            return results
                .into_iter()
                .map(|r| r.and_then(|()| outcome.clone()))
                .collect();
        }
    }

    fn put_route(&mut self, write: &RouteWrite) -> Result<(), CloudError> {
        let route = &write.route;
        let raw = self.raw.get(&route.id).cloned();
        let prefix = raw
            .as_ref()
            .map_or_else(|| route.destination.clone(), |r| r.prefix.clone());
        let body = serde_json::json!({
            "properties": {
                "addressPrefix": prefix,
                "nextHopType": "VirtualAppliance",
                "nextHopIpAddress": write.next_hop,
            }
        })
        .to_string();
        let what = format!(
            "writing route {} ({}) in Route Table {}",
            route.id, route.destination, self.name
        );
        let etag = raw.and_then(|r| r.etag).filter(|_| write.conditional);
        let headers: Vec<(&str, &str)> = etag.iter().map(|e| ("If-Match", e.as_str())).collect();
        let url = self.route_url(&route.id);
        let reply = self.arm_call_with(Method::Put, &url, &what, &headers, Some(&body))?;
        match reply.status {
            200..=202 => self.follow(reply, &what),
            412 => Err(self.changed(&route.id)),
            _ => Err(self.api_error(&reply)),
        }
    }

    /// The [`CloudError::Changed`] for a route whose etag no longer matched: read again to say
    /// where it points now.
    fn changed(&mut self, route: &str) -> CloudError {
        let now = self.read_table().ok().and_then(|routes| {
            routes
                .into_iter()
                .find(|r| r.id == route)
                .and_then(|r| r.next_hop)
        });
        CloudError::Changed { now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_encoded_keys_are_decoded_like_unquote() {
        let raw = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH";
        assert_eq!(raw.len(), 44);
        assert_eq!(decode_app_key(raw), raw);
        assert_eq!(
            decode_app_key("short%2Bkey"),
            "short%2Bkey",
            "44 characters or fewer stay as given"
        );
        let encoded = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH%2B%3D%zz%";
        assert_eq!(
            decode_app_key(encoded),
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH+=%zz%"
        );
    }

    #[test]
    fn routes_parse_with_only_virtual_appliances_movable() {
        let body = r#"{"name":"t","properties":{"routes":[
            {"name":"r1","properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.10"}},
            {"name":"r6","properties":{"addressPrefix":"2001:DB8::/32","nextHopType":"VirtualAppliance","nextHopIpAddress":"2001:DB8::A"}},
            {"name":"web","properties":{"addressPrefix":"0.0.0.0/0","nextHopType":"Internet"}},
            {"name":"tag","properties":{"addressPrefix":"AzureCloud","nextHopType":"None"}}]}}"#;
        let mut raw = HashMap::new();
        let routes = parse_routes(body, &mut raw).expect("parses");
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].next_hop.as_deref(), Some("10.0.1.10"));
        assert_eq!(routes[1].destination, "2001:db8::/32");
        assert_eq!(routes[1].next_hop.as_deref(), Some("2001:db8::a"));
        assert_eq!(
            raw.get("r6").map(|r| r.prefix.as_str()),
            Some("2001:DB8::/32")
        );
        assert!(!routes[2].movable() && !routes[3].movable());
        assert_eq!(routes[3].destination, "AzureCloud");
        assert!(parse_routes("<html>", &mut raw).is_err());
    }

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
    fn token_lifetime_keeps_a_margin() {
        assert_eq!(
            token_lifetime(Some(1_000 + 3_600), None, 1_000),
            Duration::from_secs(3_300)
        );
        assert_eq!(
            token_lifetime(None, Some(600), 1_000),
            Duration::from_secs(300)
        );
        assert_eq!(
            token_lifetime(Some(10), Some(120), 1_000),
            Duration::from_secs(60)
        );
        assert_eq!(token_lifetime(None, None, 1_000), Duration::ZERO);
    }

    #[test]
    fn secrets_do_not_show_in_debug_or_scrubbed_text() {
        let credential = Credential::App {
            tenant: "t".into(),
            app_id: "a".into(),
            key: Secret::new("k3y-s3cret"),
            given: Secret::new("k3y%2Ds3cret"),
        };
        assert!(!format!("{credential:?}").contains("k3y-s3cret"));
        assert_eq!(
            credential.scrub("echo k3y-s3cret back, k3y%2Ds3cret too"),
            "echo ******** back, ******** too"
        );
    }

    #[test]
    fn each_cloud_has_its_own_endpoints() {
        let gov = AzureConfig::for_cloud(AzureCloud::UsGov);
        assert_eq!(gov.arm, "https://management.usgovcloudapi.net");
        assert_eq!(gov.login, "https://login.microsoftonline.us");
        assert_eq!(gov.resource, "https://management.usgovcloudapi.net/");
        let china = AzureConfig::for_cloud(AzureCloud::China);
        assert_eq!(china.login, "https://login.chinacloudapi.cn");
        assert_eq!(china.imds, "http://169.254.169.254");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("rg-(prod).1"), "rg-(prod).1");
        assert_eq!(segment("a b/é"), "a%20b%2F%C3%A9");
    }
}
