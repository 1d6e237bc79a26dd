//! A stateful fake of what the GCP provider talks to, on 127.0.0.1 (random port):
//!
//! ```text
//! GET|DELETE /compute/v1/projects/{p}/global/routes/{name}
//! POST       /compute/v1/projects/{p}/global/routes
//! POST       /compute/v1/projects/{p}/global/operations/{op}/wait
//! GET        /computeMetadata/v1/instance/service-accounts/default/token   (Metadata-Flavor: Google)
//! POST       /token   (jwt-bearer grant; the JWT's RS256 signature is checked when a key is set)
//! ```
//!
//! Writes answer with an operation that finishes after `polls_until_done` waits; the write takes
//! effect only when it finishes, as in GCP. Compute calls need `Authorization: Bearer <token>`.
//! Error bodies follow the API's shape. Scripted answers (`script`) are served first, once each.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use serde_json::{json, Value};

use super::loopback::{form, Loopback};

/// Where the fake says routes and networks live (never contacted).
pub const SELF_LINK: &str = "https://compute.fake.invalid/compute/v1";

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
    /// The token the fake hands out and expects.
    pub access_token: String,
    pub tokens_issued: u32,
    pub jwt: Option<JwtCheck>,
    /// Claims of every JWT the token endpoint accepted.
    pub jwt_claims: Vec<Value>,
    ops: BTreeMap<String, Op>,
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
            access_token: format!(
                "ya29.fake-token-{port}-{}",
                FAKES.fetch_add(1, Ordering::Relaxed)
            ),
            tokens_issued: 0,
            jwt: None,
            jwt_claims: Vec::new(),
            ops: BTreeMap::new(),
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
    let path = request.url().split('?').next().unwrap_or("").to_string();
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
    let (status, answer) = compute(&mut s, &method, &path, &body);
    drop(s);
    respond(request, status, &answer);
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

fn compute(s: &mut State, method: &str, path: &str, body: &str) -> (u16, String) {
    let no_such_path = || {
        (
            404,
            api_error(
                404,
                "NOT_FOUND",
                "notFound",
                &format!("no such path {path}"),
            ),
        )
    };
    let Some(rest) = path.strip_prefix("/compute/v1/projects/") else {
        return no_such_path();
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (method, segments.as_slice()) {
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
        _ => no_such_path(),
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
    let prefix = format!("projects/{project}/global/networks/");
    if name.is_empty() || !network.starts_with(&prefix) {
        return bad("Invalid value for field 'resource.network'");
    }
    if route["destRange"].as_str().is_none() || route["nextHopIp"].as_str().is_none() {
        return bad("Invalid value for field 'resource.destRange' or 'resource.nextHopIp'");
    }
    if route["priority"].as_u64().is_none_or(|p| p > 65535) {
        return bad("Invalid value for field 'resource.priority'");
    }
    let key = format!("{project}/{name}");
    if s.routes.contains_key(&key) {
        let message =
            format!("The resource 'projects/{project}/global/routes/{name}' already exists");
        return (
            409,
            api_error(409, "ALREADY_EXISTS", "alreadyExists", &message),
        );
    }
    let mut stored = route.clone();
    stored["kind"] = "compute#route".into();
    stored["network"] = format!("{SELF_LINK}/{network}").into();
    stored["selfLink"] = format!("{SELF_LINK}/projects/{project}/global/routes/{name}").into();
    new_op(s, project, "insert", &name, Effect::Insert(key, stored))
}

fn new_op(s: &mut State, project: &str, kind: &str, name: &str, effect: Effect) -> (u16, String) {
    s.next_op += 1;
    let op_name = format!("operation-{}-{kind}", s.next_op);
    let op = Op {
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
    if op.remaining > 0 {
        return (
            200,
            operation(project, op_name, "", "RUNNING", None).to_string(),
        );
    }
    let error = op.error.clone();
    let effect = op.effect.take();
    if error.is_none() {
        match effect {
            Some(Effect::Insert(key, route)) => {
                s.routes.insert(key, route);
            }
            Some(Effect::Delete(key)) => {
                s.routes.remove(&key);
            }
            None => {}
        }
    }
    (
        200,
        operation(project, op_name, "", "DONE", error.as_ref()).to_string(),
    )
}
