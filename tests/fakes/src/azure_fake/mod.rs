//! A stateful fake of the three Azure services the provider talks to, on one loopback port:
//!
//! ```text
//! IMDS   GET  /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…   (Metadata: true)
//! AAD    POST /{tenant}/oauth2/v2.0/token   grant_type=client_credentials&client_id=…&client_secret=…&scope=…/.default
//! ARM    GET  /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/routeTables/{t}
//!        PUT  …/routeTables/{t}   GET, PUT …/routeTables/{t}/routes/{name}
//!        GET  /subscriptions/{s}/providers/Microsoft.Network/locations/westeurope/operations/{id}
//!        GET  /subscriptions/{s}/providers/Microsoft.Network/locations/westeurope/operationResults/{id}
//!        GET  …/routeTables/{t}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01
//! ```
//!
//! Shapes follow the REST reference: ARM errors are `{"error":{"code","message"}}`, throttling is
//! 429 with `Retry-After: 1`, a busy table 409 `AnotherOperationInProgress`, long-running writes
//! answer 201/200 with `Azure-AsyncOperation` (or 202 with `Location`) and complete on the second
//! poll, or (`Writes::StateOnly`) with no header and a `provisioningState` read on the resource.
//! ARM accepts only the bearer tokens this fake issued, with `Accept: application/json`, and
//! every `Microsoft.Network` request is checked against Azure's published description
//! ([`spec`]): a path, verb, api-version or body field it does not define is a 400.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tiny_http::{Header, Response};

use crate::loopback::{form, Loopback};

/// ARM's side: route tables, route and table PUTs, long-running operations, permissions.
mod arm;
/// Azure's description of the API, and the check of each request against it.
pub mod spec;

/// One route as ARM stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeRoute {
    pub name: String,
    pub prefix: String,
    pub hop_type: String,
    pub hop_ip: Option<String>,
}

impl FakeRoute {
    pub fn appliance(name: &str, prefix: &str, ip: &str) -> FakeRoute {
        FakeRoute {
            name: name.into(),
            prefix: prefix.into(),
            hop_type: "VirtualAppliance".into(),
            hop_ip: Some(ip.into()),
        }
    }

    pub fn other(name: &str, prefix: &str, hop_type: &str) -> FakeRoute {
        FakeRoute {
            name: name.into(),
            prefix: prefix.into(),
            hop_type: hop_type.into(),
            hop_ip: None,
        }
    }

    /// A route without a name, as the schema allows (ARM cannot address it).
    pub fn nameless(prefix: &str, ip: &str) -> FakeRoute {
        FakeRoute::appliance("", prefix, ip)
    }

    fn to_json(&self, table_id: &str, etag: &str) -> Value {
        let mut props = json!({
            "provisioningState": "Succeeded",
            "addressPrefix": self.prefix,
            "nextHopType": self.hop_type,
            "hasBgpOverride": false,
        });
        if let Some(ip) = &self.hop_ip {
            props["nextHopIpAddress"] = json!(ip);
        }
        if self.name.is_empty() {
            return json!({ "properties": props });
        }
        json!({
            "name": self.name,
            "id": format!("{table_id}/routes/{}", self.name),
            "etag": etag,
            "type": "Microsoft.Network/routeTables/routes",
            "properties": props,
        })
    }
}

/// A request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    /// When the fake received it.
    pub at: std::time::Instant,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))?;
        Some(value)
    }
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }
    pub fn is_imds(&self) -> bool {
        self.path() == "/metadata/identity/oauth2/token"
    }
    pub fn is_login(&self) -> bool {
        self.method == "POST" && self.path().contains("/oauth2/")
    }
    pub fn is_permissions(&self) -> bool {
        self.path()
            .ends_with("/providers/Microsoft.Authorization/permissions")
    }
    pub fn is_route_put(&self) -> bool {
        self.method == "PUT" && self.path().contains("/routes/")
    }
    pub fn is_table_put(&self) -> bool {
        self.method == "PUT" && !self.path().contains("/routes/")
    }
    pub fn is_table_get(&self) -> bool {
        let path = self.path().to_ascii_lowercase();
        self.method == "GET"
            && path.contains("/routetables/")
            && !path.contains("/routes/")
            && !self.is_permissions()
    }
}

/// How writes complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// 200/201 with the route, done at once.
    Immediate,
    /// 200/201 + `Azure-AsyncOperation`; the write lands on the second poll.
    AzureAsync,
    /// 202 + `Location`; the write lands on the second poll.
    Location,
    /// 200/201 with `provisioningState: "Updating"` and no polling header. The resource written
    /// (route or table) then reads `Updating` for `polls` GETs, each with `Retry-After` if
    /// given, and `end` after: `Succeeded` applies the write, `Failed`/`Canceled` drop it.
    StateOnly {
        polls: u32,
        end: &'static str,
        retry_after: Option<u32>,
    },
}

#[derive(Debug)]
struct Op {
    table: String,
    /// What the write sets when it completes: one route, or every route of a table PUT.
    routes: Vec<FakeRoute>,
    polls: u32,
    fail: bool,
    /// Followed by reading the resource ([`Writes::StateOnly`]), not an operation URL.
    state_only: bool,
}

/// The fake's state; tests set it up and inspect it through [`Fake::state`].
#[derive(Debug)]
pub struct State {
    /// Route tables by lower-cased ARM id (`/subscriptions/s/resourcegroups/g/…/routetables/t`).
    pub tables: BTreeMap<String, Vec<FakeRoute>>,
    pub seen: Vec<Seen>,
    /// The next N ARM requests answer 429 with `Retry-After: 1`.
    pub throttle: u32,
    /// The next N route PUTs answer 409 `AnotherOperationInProgress` with `Retry-After: 1`.
    pub busy: u32,
    /// The next N ARM requests answer 500.
    pub server_errors: u32,
    /// Route PUTs answer 403 `AuthorizationFailed`.
    pub deny_writes: bool,
    pub writes: Writes,
    /// Long-running writes end `Failed` instead of `Succeeded`.
    pub fail_operations: bool,
    ops: BTreeMap<u32, Op>,
    next_op: u32,
    /// The `resource=` token requests must name (empty: any `https://…/`).
    pub resource: String,
    /// The managed identity's current token; ARM accepts it.
    pub imds_token: String,
    /// IMDS answers "Identity not found" (a VM without a managed identity).
    pub no_identity: bool,
    /// The app registration: tenant, app id, key. ARM accepts `app_token` once it was issued.
    pub app: Option<(String, String, String)>,
    pub app_token: String,
    pub arm_base: String,
    /// Permissions - List For Resource answers `{"value": permissions}` for every table…
    pub permissions: Value,
    /// …unless this is set: then that status with ARM's error (403 `AuthorizationFailed`: the
    /// caller may not read its own permissions).
    pub permissions_refused: Option<u16>,
    /// Tables whose GET answers this body word for word (a description's example), by
    /// lower-cased ARM id.
    pub verbatim: BTreeMap<String, String>,
    /// Write count per route (`<table id>/routes/<name>`, lower case) and per table: the etags.
    versions: BTreeMap<String, u32>,
    /// Another writer: right after the next table GET, this route of this table (lower-cased
    /// table id, route name) is pointed at this IP, as if someone else wrote it in between.
    pub change_after_read: Option<(String, String, String)>,
    /// A wrong app key's error quotes the request body it was sent, as some endpoints do.
    pub echo_login_body: bool,
}

/// A running fake; stopped when dropped.
pub struct Fake {
    pub base: String,
    pub state: Arc<Mutex<State>>,
    _server: Loopback,
    /// A credential cache directory for the runs against this fake.
    pub cache: tempfile::TempDir,
}

pub const SUB: &str = "00000000-1111-2222-3333-444444444444";
pub const GROUP: &str = "rg-csr";
/// The token audience the tests configure (a reserved, unresolvable name).
pub const RESOURCE: &str = "https://arm.fake.invalid/";

pub fn table_id(table: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{GROUP}/providers/Microsoft.Network/routeTables/{table}")
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}.{nanos:x}.fake-signature")
}

impl Fake {
    pub fn start() -> Fake {
        let server = Loopback::bind();
        let base = server.url.clone();
        let state = Arc::new(Mutex::new(State {
            tables: BTreeMap::new(),
            seen: Vec::new(),
            throttle: 0,
            busy: 0,
            server_errors: 0,
            deny_writes: false,
            writes: Writes::Immediate,
            fail_operations: false,
            ops: BTreeMap::new(),
            next_op: 1,
            resource: RESOURCE.into(),
            imds_token: unique("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.imds"),
            no_identity: false,
            app: None,
            app_token: unique("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.app"),
            arm_base: base.clone(),
            versions: BTreeMap::new(),
            change_after_read: None,
            echo_login_body: false,
            permissions: json!([{"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}]),
            permissions_refused: None,
            verbatim: BTreeMap::new(),
        }));
        let shared = Arc::clone(&state);
        let server = server.serve(move |mut request| {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let seen = Seen {
                method: request.method().as_str().to_string(),
                url: request.url().to_string(),
                headers: request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_string(),
                            h.value.as_str().to_string(),
                        )
                    })
                    .collect(),
                body,
                status: 0,
                at: std::time::Instant::now(),
            };
            let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
            let answer = st.handle(&seen);
            st.seen.push(Seen {
                status: answer.status,
                ..seen
            });
            drop(st);
            let mut response = Response::from_string(answer.body).with_status_code(answer.status);
            response.add_header(
                Header::from_bytes("Content-Type", "application/json; charset=utf-8")
                    .expect("header"),
            );
            for (k, v) in answer.headers {
                response
                    .add_header(Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("header"));
            }
            let _ = request.respond(response);
        });
        Fake {
            cache: tempfile::tempdir().expect("cache dir"),
            base,
            state,
            _server: server,
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a table in the test subscription and resource group.
    pub fn add_table(&self, name: &str, routes: Vec<FakeRoute>) {
        self.state()
            .tables
            .insert(table_id(name).to_ascii_lowercase(), routes);
    }

    pub fn routes(&self, table: &str) -> Vec<FakeRoute> {
        self.state()
            .tables
            .get(&table_id(table).to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    pub fn route(&self, table: &str, name: &str) -> FakeRoute {
        self.routes(table)
            .into_iter()
            .find(|r| r.name == name)
            .expect("route exists")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }

    /// Makes another writer point `route` of `table` at `ip` right after the next table GET.
    /// Makes `table` (in subscription `sub`, group `group`) answer its GET with `body` as given.
    pub fn add_verbatim_table(&self, sub: &str, group: &str, table: &str, body: &str) {
        let id = format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Network/routeTables/{table}");
        self.state()
            .verbatim
            .insert(id.to_ascii_lowercase(), body.to_string());
    }

    pub fn change_after_read(&self, table: &str, route: &str, ip: &str) {
        self.state().change_after_read = Some((
            table_id(table).to_ascii_lowercase(),
            route.to_string(),
            ip.to_string(),
        ));
    }
}

struct Answer {
    status: u16,
    body: String,
    headers: Vec<(String, String)>,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        body: body.to_string(),
        headers: Vec::new(),
    }
}

fn arm_error(status: u16, code: &str, message: &str) -> Answer {
    answer(status, json!({"error": {"code": code, "message": message}}))
}

fn query(url: &str) -> BTreeMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| form(q))
        .unwrap_or_default()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl State {
    /// `resource=` must be the configured audience; an empty `resource` accepts any URI (for
    /// runs whose audience is the real cloud's default, which tests do not spell out).
    fn resource_ok(&self, asked: Option<&String>) -> bool {
        match asked {
            Some(asked) if self.resource.is_empty() => {
                asked.starts_with("https://") && asked.ends_with('/')
            }
            Some(asked) => *asked == self.resource,
            None => false,
        }
    }

    /// `scope=` must be the audience's `/.default` scope (`https://arm.fake.invalid/.default`):
    /// the resource URI without its trailing `/`, then `/.default`.
    fn scope_ok(&self, asked: Option<&String>) -> bool {
        let Some(resource) = asked.and_then(|s| s.strip_suffix("/.default")) else {
            return false;
        };
        !resource.ends_with('/') && self.resource_ok(Some(&format!("{resource}/")))
    }

    fn handle(&mut self, req: &Seen) -> Answer {
        let path = req.path().to_string();
        if path == "/metadata/identity/oauth2/token" {
            return self.imds(req);
        }
        if req.method == "POST" && path.ends_with("/oauth2/v2.0/token") {
            return self.login(req);
        }
        if req.method == "POST" && path.ends_with("/oauth2/token") {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "AADSTS90000: this fake serves only the Microsoft identity platform (v2.0) endpoint, /{tenant}/oauth2/v2.0/token"}),
            );
        }
        self.arm(req, &path)
    }

    fn imds(&mut self, req: &Seen) -> Answer {
        if req.header("Metadata") != Some("true") {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "Required metadata header not specified"}),
            );
        }
        let q = query(&req.url);
        if q.get("api-version").map(String::as_str) != Some("2018-02-01")
            || !self.resource_ok(q.get("resource"))
        {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "Invalid api-version or resource"}),
            );
        }
        if self.no_identity {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "Identity not found"}),
            );
        }
        answer(
            200,
            json!({
                "access_token": self.imds_token,
                "client_id": "55555555-6666-7777-8888-999999999999",
                "expires_in": "86399",
                "expires_on": (now() + 86399).to_string(),
                "ext_expires_in": "86399",
                "not_before": now().to_string(),
                "resource": self.resource,
                "token_type": "Bearer",
            }),
        )
    }

    fn login(&mut self, req: &Seen) -> Answer {
        let tenant = req
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        let f = form(&req.body);
        let Some((app_tenant, app_id, key)) = self.app.clone() else {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "AADSTS90002: Tenant not found."}),
            );
        };
        if tenant != app_tenant {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.\r\nTrace ID: 1\r\nTimestamp: 2026-01-01 00:00:00Z")}),
            );
        }
        if let Some(unknown) = f
            .keys()
            .find(|k| !["grant_type", "client_id", "client_secret", "scope"].contains(&k.as_str()))
        {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": format!("AADSTS901002: The request body must not contain '{unknown}' on the v2.0 endpoint.")}),
            );
        }
        if f.get("grant_type").map(String::as_str) != Some("client_credentials")
            || !self.scope_ok(f.get("scope"))
        {
            return answer(
                400,
                json!({"error": "invalid_scope", "error_description": "AADSTS1002012: bad grant_type, or the scope is not <resource>/.default"}),
            );
        }
        if f.get("client_id") != Some(&app_id) {
            return answer(
                400,
                json!({"error": "unauthorized_client", "error_description": format!("AADSTS700016: Application with identifier '{}' was not found in the directory.", f.get("client_id").cloned().unwrap_or_default())}),
            );
        }
        if f.get("client_secret") != Some(&key) && self.echo_login_body {
            return answer(
                401,
                json!({
                    "error": "invalid_client",
                    "error_description": format!("AADSTS7000215: Invalid client secret provided in {}", req.body),
                }),
            );
        }
        if f.get("client_secret") != Some(&key) {
            return answer(
                401,
                json!({
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.\r\nTrace ID: 2\r\nCorrelation ID: 3\r\nTimestamp: 2026-01-01 00:00:00Z",
                    "error_codes": [7000215],
                }),
            );
        }
        answer(
            200,
            json!({
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": self.app_token,
            }),
        )
    }
}
