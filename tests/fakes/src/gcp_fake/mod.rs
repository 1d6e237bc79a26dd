//! A stateful fake of what the GCP provider talks to, on 127.0.0.1 (random port):
//!
//! ```text
//! GET        /compute/v1/projects/{p}/global/routes/{name}
//! DELETE     /compute/v1/projects/{p}/global/routes/{name}?requestId={uuid}
//! POST       /compute/v1/projects/{p}/global/routes?requestId={uuid}
//! POST       /compute/v1/projects/{p}/global/operations/{op}/wait
//! POST       /v3/projects/{p}:testIamPermissions          (Cloud Resource Manager)
//! GET        /computeMetadata/v1/instance/service-accounts/default/token   (Metadata-Flavor: Google)
//! POST       /token   (jwt-bearer grant; the JWT's RS256 signature is checked when a key is set)
//!            /token   grant_type=refresh_token&client_id&client_secret&refresh_token
//!                     (authorized_user credentials; checked against `user` when it is set)
//! ```
//!
//! Compute and Resource Manager calls are held against the discovery documents
//! ([`discovery`]): an undefined path, verb, query parameter or body field is refused with
//! Google's 400 and the reason, and an `Accept` other than exactly `application/json` is refused
//! too. They need `Authorization: Bearer <token>`. Writes answer with an operation that
//! finishes after `polls_until_done` waits; the write takes effect only when it finishes, as in
//! GCP. A write repeating a `requestId` gets the first one's operation and is not applied again,
//! as Compute de-duplicates. Error bodies follow the API's shape. Scripted answers (`script`)
//! are served first, once each; `lose_answer` applies a request and then sends garbage instead
//! of its answer (the connection dropped after the cloud acted).

pub mod discovery;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{json, Value};

use crate::loopback::{form, Loopback};
use std::io::Write;

/// Where the fake says routes and networks live (never contacted).
pub const SELF_LINK: &str = "https://compute.fake.invalid/compute/v1";

/// The permissions the provider asks testIamPermissions about; all granted unless a test says.
pub const ALL_PERMISSIONS: [&str; 3] = [
    "compute.routes.create",
    "compute.routes.delete",
    "compute.networks.updatePolicy",
];

/// Fakes started by this process, so that each hands out its own token even on a reused port.
static FAKES: AtomicU32 = AtomicU32::new(0);

pub struct Scripted {
    pub method: &'static str,
    /// Matched against the end of the request path.
    pub path_end: String,
    pub status: u16,
    pub body: String,
}

/// Checks on the JWT a key-file client sends.
/// The OAuth client and refresh token the refresh-token grant accepts.
pub struct UserCheck {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

pub struct JwtCheck {
    /// PKCS#1 RSAPublicKey DER of the key that must have signed it.
    pub public_key: Vec<u8>,
    pub client_email: String,
}

enum Effect {
    Insert(String, Value),
    Delete(String),
}

struct Op {
    target: String,
    remaining: u32,
    effect: Option<Effect>,
    error: Option<(String, String)>,
}

pub struct State {
    /// Routes by `project/name`.
    pub routes: BTreeMap<String, Value>,
    /// Every request, as `METHOD /path`.
    pub requests: Vec<String>,
    /// Bodies of route inserts, in order.
    pub inserted: Vec<Value>,
    /// Waits served per operation name.
    pub waits: BTreeMap<String, u32>,
    /// Waits a new operation needs before it is DONE (at least 1).
    pub polls_until_done: u32,
    /// `(code, message)` the next operation finishes with.
    pub op_error: Option<(String, String)>,
    pub script: VecDeque<Scripted>,
    /// `(method, path end)` of requests to apply and then answer with garbage, once each.
    pub lose: VecDeque<(&'static str, String)>,
    /// The `requestId` of every route insert and delete, in order (`None`: sent without one).
    pub write_ids: Vec<Option<String>>,
    /// Operations started, i.e. writes applied (a repeated `requestId` starts none).
    pub writes: u32,
    /// What testIamPermissions says is granted.
    pub granted: Vec<String>,
    /// Resource Manager answers 403 `SERVICE_DISABLED` (the API is off in the project).
    pub resource_manager_disabled: bool,
    /// Requests refused for not matching the description, with the reason.
    pub refused: Vec<String>,
    /// Fields of the fake's own answers that the description does not define.
    pub drift: Vec<String>,
    /// The token the fake hands out and expects.
    pub access_token: String,
    pub tokens_issued: u32,
    pub jwt: Option<JwtCheck>,
    /// Claims of every JWT the token endpoint accepted.
    pub jwt_claims: Vec<Value>,
    /// What the refresh-token grant accepts; `None`: every refresh grant is refused.
    pub user: Option<UserCheck>,
    /// The `client_id` of every refresh-token grant, accepted or not.
    pub refresh_clients: Vec<String>,
    ops: BTreeMap<String, Op>,
    /// Operation name by `requestId`.
    request_ids: BTreeMap<String, String>,
    next_op: u32,
}

pub struct GcpFake {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// `127.0.0.1:PORT`
    pub host: String,
    state: Arc<Mutex<State>>,
    _server: Loopback,
    /// A credential cache directory for the runs against this fake.
    pub cache: tempfile::TempDir,
}

impl GcpFake {
    pub fn start() -> GcpFake {
        let server = Loopback::bind();
        let port = server.port;
        let state = Arc::new(Mutex::new(State {
            routes: BTreeMap::new(),
            requests: Vec::new(),
            inserted: Vec::new(),
            waits: BTreeMap::new(),
            polls_until_done: 1,
            op_error: None,
            script: VecDeque::new(),
            lose: VecDeque::new(),
            write_ids: Vec::new(),
            writes: 0,
            granted: ALL_PERMISSIONS.iter().map(|p| p.to_string()).collect(),
            resource_manager_disabled: false,
            refused: Vec::new(),
            drift: Vec::new(),
            access_token: format!(
                "ya29.fake-token-{port}-{}",
                FAKES.fetch_add(1, Ordering::Relaxed)
            ),
            tokens_issued: 0,
            jwt: None,
            jwt_claims: Vec::new(),
            user: None,
            refresh_clients: Vec::new(),
            ops: BTreeMap::new(),
            request_ids: BTreeMap::new(),
            next_op: 0,
        }));
        let shared = Arc::clone(&state);
        let server = server.serve(move |request| serve(&shared, request));
        GcpFake {
            cache: tempfile::tempdir().expect("cache dir"),
            url: server.url.clone(),
            host: format!("127.0.0.1:{port}"),
            state,
            _server: server,
        }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    /// Adds a route as GCP would show it.
    pub fn put_route(
        &self,
        project: &str,
        vpc: &str,
        name: &str,
        dest: &str,
        hop: &str,
        priority: u32,
    ) {
        let route = json!({
            "kind": "compute#route",
            "name": name,
            "network": format!("{SELF_LINK}/projects/{project}/global/networks/{vpc}"),
            "destRange": dest,
            "nextHopIp": hop,
            "priority": priority,
            "selfLink": format!("{SELF_LINK}/projects/{project}/global/routes/{name}"),
        });
        self.state()
            .routes
            .insert(format!("{project}/{name}"), route);
    }

    pub fn route(&self, project: &str, name: &str) -> Option<Value> {
        self.state()
            .routes
            .get(&format!("{project}/{name}"))
            .cloned()
    }

    /// Serves `status`/`body` once for the next `method` request whose path ends with `path_end`.
    pub fn script(&self, method: &'static str, path_end: &str, status: u16, body: &str) {
        self.state().script.push_back(Scripted {
            method,
            path_end: path_end.to_string(),
            status,
            body: body.to_string(),
        });
    }

    /// Applies the next `method` request whose path ends with `path_end`, then answers it with
    /// garbage instead of its answer, once.
    pub fn lose_answer(&self, method: &'static str, path_end: &str) {
        self.state().lose.push_back((method, path_end.to_string()));
    }

    /// Requests seen, as `METHOD /path`, that contain `needle`.
    pub fn requests_with(&self, needle: &str) -> Vec<String> {
        self.state()
            .requests
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }
}

impl Drop for GcpFake {
    /// Every answer the fake gave must fit the description it stands for.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let drift = std::mem::take(&mut self.state().drift);
            assert!(
                drift.is_empty(),
                "the GCP fake's answers drifted: {drift:?}"
            );
        }
    }
}

fn header(request: &tiny_http::Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

fn respond(request: tiny_http::Request, status: u16, body: &str) {
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(content_type);
    let _ = request.respond(response);
}

fn api_error(code: u16, status: &str, reason: &str, message: &str) -> String {
    json!({"error": {"code": code, "message": message, "status": status,
        "errors": [{"message": message, "domain": "global", "reason": reason}]}})
    .to_string()
}

fn serve(state: &Mutex<State>, mut request: tiny_http::Request) {
    let method = request.method().as_str().to_string();
    let url = request.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let (path, query) = (path.to_string(), form(query));
    let mut body = String::new();
    let _ = request.as_reader().read_to_string(&mut body);
    let mut s = state.lock().expect("fake state");
    s.requests.push(format!("{method} {path}"));
    if let Some(i) = s
        .script
        .iter()
        .position(|x| x.method == method && path.ends_with(&x.path_end))
    {
        let scripted = s.script.remove(i).expect("scripted");
        drop(s);
        return respond(request, scripted.status, &scripted.body);
    }
    if path == "/computeMetadata/v1/instance/service-accounts/default/token" {
        if header(&request, "Metadata-Flavor").as_deref() != Some("Google") {
            return respond(request, 403, "Missing required header: Metadata-Flavor");
        }
        s.tokens_issued += 1;
        let answer =
            json!({"access_token": s.access_token, "expires_in": 3599, "token_type": "Bearer"});
        drop(s);
        return respond(request, 200, &answer.to_string());
    }
    if path == "/token" && method == "POST" {
        let (status, answer) = token_grant(&mut s, &body);
        drop(s);
        return respond(request, status, &answer);
    }
    let expected = format!("Bearer {}", s.access_token);
    if header(&request, "Authorization").as_deref() != Some(expected.as_str()) {
        let answer = api_error(
            401,
            "UNAUTHENTICATED",
            "authError",
            "Request had invalid authentication credentials.",
        );
        drop(s);
        return respond(request, 401, &answer);
    }
    let accept = header(&request, "Accept");
    let (status, answer) = match described(&method, &path, &query, &body) {
        Err(why) => {
            s.refused.push(format!("{method} {path}: {why}"));
            (400, api_error(400, "INVALID_ARGUMENT", "invalid", &why))
        }
        Ok(_) if accept.as_deref() != Some("application/json") => {
            let why =
                format!("Accept is {accept:?}; the client libraries send exactly application/json");
            s.refused.push(format!("{method} {path}: {why}"));
            (400, api_error(400, "INVALID_ARGUMENT", "invalid", &why))
        }
        Ok(described) => {
            let id = query.get("requestId").cloned();
            let (status, answer) = dispatch(&mut s, &method, &path, id, &body);
            if let Some((api, found)) = described.filter(|_| (200..300).contains(&status)) {
                let drift = api.answer_drift(found, &answer);
                s.drift.extend(drift);
            }
            (status, answer)
        }
    };
    let lost = s
        .lose
        .iter()
        .position(|(m, end)| *m == method && path.ends_with(end.as_str()));
    if let Some(i) = lost {
        s.lose.remove(i);
        drop(s);
        // Not an HTTP answer: the client sees the connection fail after the fake acted.
        let mut writer = request.into_writer();
        let _ = writer.write_all(b"garbage\r\n\r\n");
        let _ = writer.flush();
        return;
    }
    drop(s);
    respond(request, status, &answer);
}

/// The description's method for this request, or why the description has none; `Ok(None)`
/// where there are no descriptions to check against ([`crate::api_descriptions`]).
fn described(
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    body: &str,
) -> Result<Option<(&'static discovery::Api, &'static discovery::Method)>, String> {
    let api = if path.starts_with("/compute/") {
        discovery::compute()
    } else {
        discovery::resource_manager()
    };
    let Some(api) = api else {
        return Ok(None);
    };
    let found = api.method(method, path.trim_start_matches('/'))?;
    let names: Vec<String> = query.keys().cloned().collect();
    api.check_query(found, &names)?;
    api.check_body(found, body)?;
    Ok(Some((api, found)))
}

/// The jwt-bearer grant: checks the form, the JWT's shape, claims and signature.
fn token_grant(s: &mut State, body: &str) -> (u16, String) {
    let refuse = |why: &str| {
        (
            400,
            json!({"error": "invalid_grant", "error_description": why}).to_string(),
        )
    };
    let form = form(body);
    if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh_grant(s, &form);
    }
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse("bad grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return refuse("no assertion");
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return refuse("not a JWT");
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode_json =
        |part: &str| -> Option<Value> { serde_json::from_slice(&b64.decode(part).ok()?).ok() };
    let (Some(head), Some(claims), Ok(signature)) = (
        decode_json(parts[0]),
        decode_json(parts[1]),
        b64.decode(parts[2]),
    ) else {
        return refuse("undecodable JWT");
    };
    if head["alg"] != "RS256" || head["typ"] != "JWT" {
        return refuse("bad JWT header");
    }
    if let Some(check) = &s.jwt {
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &check.public_key,
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        if key.verify(signed.as_bytes(), &signature).is_err() {
            return refuse("Invalid JWT Signature.");
        }
        if claims["iss"] != check.client_email.as_str() {
            return refuse("wrong iss");
        }
    }
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap_or(0),
        claims["exp"].as_u64().unwrap_or(0),
    );
    if exp <= iat
        || exp - iat > 3600
        || !claims["aud"]
            .as_str()
            .is_some_and(|a| a.ends_with("/token"))
    {
        return refuse("bad claims");
    }
    s.jwt_claims.push(claims);
    s.tokens_issued += 1;
    (
        200,
        json!({"access_token": s.access_token, "expires_in": 3599, "token_type": "Bearer"})
            .to_string(),
    )
}

/// The refresh-token grant, answered as Google's token endpoint does: an unknown client is 401
/// `invalid_client`, a wrong secret 401 `unauthorized_client`, a revoked or wrong refresh token
/// 400 `invalid_grant`; only the four fields google-auth sends are accepted.
fn refresh_grant(s: &mut State, form: &BTreeMap<String, String>) -> (u16, String) {
    let error = |status: u16, code: &str, why: &str| {
        (
            status,
            json!({"error": code, "error_description": why}).to_string(),
        )
    };
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    s.refresh_clients.push(client_id.clone());
    if let Some(unknown) = form.keys().find(|k| {
        !["grant_type", "client_id", "client_secret", "refresh_token"].contains(&k.as_str())
    }) {
        return error(
            400,
            "invalid_request",
            &format!("unexpected field {unknown}"),
        );
    }
    let Some(user) = &s.user else {
        return error(401, "invalid_client", "The OAuth client was not found.");
    };
    if client_id != user.client_id {
        return error(401, "invalid_client", "The OAuth client was not found.");
    }
    if form.get("client_secret") != Some(&user.client_secret) {
        return error(401, "unauthorized_client", "Unauthorized");
    }
    if form.get("refresh_token") != Some(&user.refresh_token) {
        return error(400, "invalid_grant", "Token has been expired or revoked.");
    }
    s.tokens_issued += 1;
    (
        200,
        json!({
            "access_token": s.access_token,
            "expires_in": 3599,
            "token_type": "Bearer",
        })
        .to_string(),
    )
}

fn dispatch(
    s: &mut State,
    method: &str,
    path: &str,
    request_id: Option<String>,
    body: &str,
) -> (u16, String) {
    if let Some(project) = path
        .strip_prefix("/v3/projects/")
        .and_then(|rest| rest.strip_suffix(":testIamPermissions"))
    {
        return test_iam_permissions(s, project, body);
    }
    let rest = path
        .strip_prefix("/compute/v1/projects/")
        .unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    let write = matches!(
        (method, segments.as_slice()),
        ("DELETE", [_, "global", "routes", _]) | ("POST", [_, "global", "routes"])
    );
    if write {
        s.write_ids.push(request_id.clone());
        if let Some(op) = request_id.as_ref().and_then(|id| s.request_ids.get(id)) {
            // Compute answers a repeated requestId with the first request's operation.
            let project = segments[0];
            return (200, current(s, project, &op.clone()).to_string());
        }
    }
    let (status, answer) = match (method, segments.as_slice()) {
        ("GET", [project, "global", "routes", name]) => {
            match s.routes.get(&format!("{project}/{name}")) {
                Some(route) => (200, route.to_string()),
                None => not_found(project, name),
            }
        }
        ("DELETE", [project, "global", "routes", name]) => {
            let key = format!("{project}/{name}");
            if !s.routes.contains_key(&key) {
                return not_found(project, name);
            }
            new_op(s, project, "delete", name, Effect::Delete(key))
        }
        ("POST", [project, "global", "routes"]) => insert(s, project, body),
        ("POST", [project, "global", "operations", op, "wait"]) => wait(s, project, op),
        _ => {
            let message = format!("the fake does not serve {method} {path}");
            (404, api_error(404, "NOT_FOUND", "notFound", &message))
        }
    };
    if let (true, Some(id), 200) = (write, request_id, status) {
        let op = serde_json::from_str::<Value>(&answer).expect("an operation")["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        s.request_ids.insert(id, op);
    }
    (status, answer)
}

/// Resource Manager's answer: the asked permissions that are granted (none: no field), or 403
/// when the API is disabled in the project.
fn test_iam_permissions(s: &State, project: &str, body: &str) -> (u16, String) {
    if s.resource_manager_disabled {
        let message = format!("Cloud Resource Manager API has not been used in project {project} before or it is disabled. Enable it, then retry.");
        let mut answer: Value = serde_json::from_str(&api_error(
            403,
            "PERMISSION_DENIED",
            "accessNotConfigured",
            &message,
        ))
        .expect("error json");
        answer["error"]["details"] = json!([{"reason": "SERVICE_DISABLED"}]);
        return (403, answer.to_string());
    }
    let asked: Value = serde_json::from_str(body).unwrap_or_default();
    let granted: Vec<&Value> = asked["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| s.granted.iter().any(|g| Some(g.as_str()) == p.as_str()))
        .collect();
    if granted.is_empty() {
        return (200, "{}".into());
    }
    (200, json!({ "permissions": granted }).to_string())
}

/// An operation as a wait or a repeated request would show it now.
fn current(s: &State, project: &str, op_name: &str) -> Value {
    match s.ops.get(op_name) {
        Some(op) if op.remaining > 0 => operation(project, op_name, &op.target, "RUNNING", None),
        Some(op) => operation(project, op_name, &op.target, "DONE", op.error.as_ref()),
        None => operation(project, op_name, "", "DONE", None),
    }
}

fn not_found(project: &str, name: &str) -> (u16, String) {
    let message = format!("The resource 'projects/{project}/global/routes/{name}' was not found");
    (404, api_error(404, "NOT_FOUND", "notFound", &message))
}

fn insert(s: &mut State, project: &str, body: &str) -> (u16, String) {
    let bad = |m: &str| (400, api_error(400, "INVALID_ARGUMENT", "invalid", m));
    let Ok(route) = serde_json::from_str::<Value>(body) else {
        return bad("Invalid JSON payload received.");
    };
    s.inserted.push(route.clone());
    let name = route["name"].as_str().unwrap_or("").to_string();
    let network = route["network"].as_str().unwrap_or("");
    // "Fully-qualified URL of the network", as the description's examples write one.
    // Without the description, its base is not known: the rest of the URL is still checked.
    let suffix = format!("/projects/{project}/global/networks/");
    let prefix = discovery::resource_base().map_or_else(|| "https://".to_string(), |b| b + &suffix);
    let vpc = network.rsplit_once(&suffix).map(|(_, vpc)| vpc);
    if name.is_empty() || !network.starts_with(&prefix) || vpc.is_none_or(str::is_empty) {
        return bad(&format!(
            "Invalid value for field 'resource.network': '{network}'. Expected a fully-qualified network URL"
        ));
    }
    if route["destRange"].as_str().is_none() || route["nextHopIp"].as_str().is_none() {
        return bad("Invalid value for field 'resource.destRange' or 'resource.nextHopIp'");
    }
    if route["priority"].as_u64().is_none_or(|p| p > 65535) {
        return bad("Invalid value for field 'resource.priority'");
    }
    let key = format!("{project}/{name}");
    let being_inserted = s.ops.values().any(|op| {
        op.remaining > 0 && matches!(&op.effect, Some(Effect::Insert(k, _)) if *k == key)
    });
    if s.routes.contains_key(&key) || being_inserted {
        let message =
            format!("The resource 'projects/{project}/global/routes/{name}' already exists");
        return (
            409,
            api_error(409, "ALREADY_EXISTS", "alreadyExists", &message),
        );
    }
    let mut stored = route.clone();
    stored["kind"] = "compute#route".into();
    stored["selfLink"] = format!("{SELF_LINK}/projects/{project}/global/routes/{name}").into();
    new_op(s, project, "insert", &name, Effect::Insert(key, stored))
}

fn new_op(s: &mut State, project: &str, kind: &str, name: &str, effect: Effect) -> (u16, String) {
    s.next_op += 1;
    s.writes += 1;
    let op_name = format!("operation-{}-{kind}", s.next_op);
    let op = Op {
        target: name.to_string(),
        remaining: s.polls_until_done.max(1),
        effect: Some(effect),
        error: s.op_error.take(),
    };
    s.ops.insert(op_name.clone(), op);
    (
        200,
        operation(project, &op_name, name, "RUNNING", None).to_string(),
    )
}

fn operation(
    project: &str,
    op: &str,
    target: &str,
    status: &str,
    error: Option<&(String, String)>,
) -> Value {
    let mut value = json!({
        "kind": "compute#operation",
        "name": op,
        "operationType": op.rsplit('-').next().unwrap_or_default(),
        "status": status,
        "targetLink": format!("{SELF_LINK}/projects/{project}/global/routes/{target}"),
        "selfLink": format!("{SELF_LINK}/projects/{project}/global/operations/{op}"),
    });
    if let Some((code, message)) = error {
        value["error"] = json!({"errors": [{"code": code, "message": message}]});
    }
    value
}

fn wait(s: &mut State, project: &str, op_name: &str) -> (u16, String) {
    *s.waits.entry(op_name.to_string()).or_default() += 1;
    let Some(op) = s.ops.get_mut(op_name) else {
        let message =
            format!("The resource 'projects/{project}/global/operations/{op_name}' was not found");
        return (404, api_error(404, "NOT_FOUND", "notFound", &message));
    };
    op.remaining = op.remaining.saturating_sub(1);
    if op.remaining == 0 && op.error.is_none() {
        match op.effect.take() {
            Some(Effect::Insert(key, route)) => {
                s.routes.insert(key, route);
            }
            Some(Effect::Delete(key)) => {
                s.routes.remove(&key);
            }
            None => {}
        }
    }
    (200, current(s, project, op_name).to_string())
}
