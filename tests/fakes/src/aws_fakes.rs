//! Loopback fakes for what moto cannot show: a metadata service (IMDSv2; IMDSv1 and a token
//! reply that never comes on demand) that hands out role
//! credentials and can revoke its tokens, and an EC2 endpoint that throttles on demand and
//! records who called it with which key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tiny_http::{Header, Request, Response};

use crate::loopback::{form, Loopback};

/// A loopback server answering each request with `handle(request, body) -> (status, text)`.
fn answering(
    mut handle: impl FnMut(&mut Request, String) -> (u16, String) + Send + 'static,
) -> Loopback {
    Loopback::bind().serve(move |mut request| {
        let mut body = String::new();
        let _ = request.as_reader().read_to_string(&mut body);
        let (status, text) = handle(&mut request, body);
        let _ = request.respond(Response::from_string(text).with_status_code(status));
    })
}

fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .iter()
        .find(|h: &&Header| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// One request the fake EC2 received.
#[derive(Debug, Clone)]
pub struct Ec2Call {
    pub action: String,
    pub params: BTreeMap<String, String>,
    /// The key id in the `Authorization` header's credential scope.
    pub access_key_id: String,
    pub security_token: Option<String>,
    /// Whether `x-amz-security-token` is among the signed headers.
    pub token_signed: bool,
}

#[derive(Default)]
struct Ec2State {
    /// table id -> its routes (destination, ENI)
    tables: BTreeMap<String, Vec<(String, String)>>,
    /// Answers to give before serving normally: (HTTP status, error code).
    failures: VecDeque<(u16, String)>,
    /// The caller's IAM policy lacks `ec2:ReplaceRoute`.
    replace_denied: bool,
    /// Network interfaces that do not exist (every other `eni-…` does).
    missing_enis: Vec<String>,
    /// STS `AssumeRole` answers 403 `AccessDenied` (the role's trust policy refuses).
    assume_denied: bool,
    /// Roles assumed so far.
    assumed: u32,
    calls: Vec<Ec2Call>,
}

/// A stateful fake EC2 with one route table whose routes all point at ENIs.
pub struct FakeEc2 {
    state: Arc<Mutex<Ec2State>>,
    _server: Loopback,
    pub endpoint: String,
}

impl FakeEc2 {
    pub fn start(table: &str, routes: &[(&str, &str)]) -> FakeEc2 {
        let state = Arc::new(Mutex::new(Ec2State::default()));
        let shared = Arc::clone(&state);
        let server = answering(move |request, body| {
            let mut state = shared.lock().expect("fake state");
            let params = form(&body);
            let authorization = header(request, "authorization").unwrap_or_default();
            let access_key_id = authorization
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next())
                .unwrap_or_default()
                .to_string();
            let token_signed = authorization.contains("x-amz-security-token");
            state.calls.push(Ec2Call {
                action: params.get("Action").cloned().unwrap_or_default(),
                params: params.clone(),
                access_key_id,
                security_token: header(request, "x-amz-security-token"),
                token_signed,
            });
            if let Some((status, code)) = state.failures.pop_front() {
                return (status, error_xml(&code, "Request limit exceeded."));
            }
            answer(&mut state, &params)
        });
        let endpoint = server.url.clone();
        let fake = FakeEc2 {
            state,
            _server: server,
            endpoint,
        };
        fake.add_table(table, routes);
        fake
    }

    /// Another route table, with routes (destination, ENI).
    pub fn add_table(&self, table: &str, routes: &[(&str, &str)]) {
        let routes = routes
            .iter()
            .map(|(d, e)| (d.to_string(), e.to_string()))
            .collect();
        let mut state = self.state.lock().expect("fake state");
        state.tables.insert(table.to_string(), routes);
    }

    /// The next `n` requests get HTTP `status` with error `code`.
    pub fn fail_next(&self, n: usize, status: u16, code: &str) {
        let mut state = self.state.lock().expect("fake state");
        for _ in 0..n {
            state.failures.push_back((status, code.to_string()));
        }
    }

    /// From now on `ReplaceRoute` (dry run or not) answers 403 `UnauthorizedOperation`.
    pub fn deny_replace_route(&self) {
        self.state.lock().expect("fake state").replace_denied = true;
    }

    /// From now on STS `AssumeRole` (this fake answers it too) is refused: `AccessDenied`.
    pub fn deny_assume_role(&self) {
        self.state.lock().expect("fake state").assume_denied = true;
    }

    /// From now on `DescribeNetworkInterfaces` does not find `eni`.
    pub fn remove_interface(&self, eni: &str) {
        let mut state = self.state.lock().expect("fake state");
        state.missing_enis.push(eni.to_string());
    }

    /// `ReplaceRoute` calls that were not dry runs: writes.
    pub fn writes(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.action == "ReplaceRoute" && !c.params.contains_key("DryRun"))
            .count()
    }

    /// Roles assumed so far (STS `AssumeRole` answered with credentials).
    pub fn assumed(&self) -> u32 {
        self.state.lock().expect("fake state").assumed
    }

    pub fn calls(&self) -> Vec<Ec2Call> {
        self.state.lock().expect("fake state").calls.clone()
    }

    pub fn eni_of(&self, destination: &str) -> Option<String> {
        let state = self.state.lock().expect("fake state");
        state
            .tables
            .values()
            .flatten()
            .find(|(d, _)| d == destination)
            .map(|(_, e)| e.clone())
    }
}

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
         </Error></Errors><RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
}

fn answer(state: &mut Ec2State, params: &BTreeMap<String, String>) -> (u16, String) {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    match get("Action").as_str() {
        "DescribeRouteTables" => {
            let asked = get("RouteTableId.1");
            let Some(routes) = state.tables.get(&asked) else {
                let message = format!("The routeTable ID '{asked}' does not exist");
                return (400, error_xml("InvalidRouteTableID.NotFound", &message));
            };
            let routes: String = routes
                .iter()
                .map(|(dest, eni)| {
                    let field = if dest.contains(':') { "destinationIpv6CidrBlock" } else { "destinationCidrBlock" };
                    format!("<item><{field}>{dest}</{field}><networkInterfaceId>{eni}</networkInterfaceId><state>active</state></item>")
                })
                .collect();
            let body = format!(
                "<DescribeRouteTablesResponse xmlns=\"http://ec2.example.invalid/doc/2016-11-15/\"><requestId>1</requestId>\
                 <routeTableSet><item><routeTableId>{}</routeTableId><routeSet>{routes}</routeSet></item></routeTableSet>\
                 </DescribeRouteTablesResponse>",
                asked
            );
            (200, body)
        }
        // STS, as a fake: credentials ASIAASSUMED0000000N, valid for an hour.
        "AssumeRole" if state.assume_denied => (
            403,
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User is not \
                 authorized to perform: sts:AssumeRole on resource: {}</Message></Error></ErrorResponse>",
                get("RoleArn")
            ),
        ),
        "AssumeRole" => {
            state.assumed += 1;
            let n = state.assumed;
            let in_an_hour = std::time::SystemTime::now() + std::time::Duration::from_secs(3_600);
            let expires = csr_ha::timestamp::utc(in_an_hour, csr_ha::timestamp::LOG_LINE);
            let body = format!(
                "<AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAASSUMED{n:09}</AccessKeyId>\
                 <SecretAccessKey>assumed-secret-{n}-do-not-leak</SecretAccessKey><SessionToken>assumed-token-{n}-do-not-leak</SessionToken>\
                 <Expiration>{expires}</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>"
            );
            (200, body)
        }
        // Every well-formed region name is a region here.
        "DescribeRegions" => {
            let asked = get("RegionName.1");
            let items = format!("<item><regionName>{asked}</regionName><regionEndpoint>ec2.{asked}.example.invalid</regionEndpoint></item>");
            let body = format!(
                "<DescribeRegionsResponse><requestId>3</requestId><regionInfo>{items}</regionInfo></DescribeRegionsResponse>"
            );
            (200, body)
        }
        "DescribeNetworkInterfaces" => {
            let asked = get("NetworkInterfaceId.1");
            if state.missing_enis.contains(&asked) {
                let message = format!("The networkInterface ID '{asked}' does not exist");
                return (
                    400,
                    error_xml("InvalidNetworkInterfaceID.NotFound", &message),
                );
            }
            let body = format!(
                "<DescribeNetworkInterfacesResponse><requestId>4</requestId><networkInterfaceSet><item>\
                 <networkInterfaceId>{asked}</networkInterfaceId></item></networkInterfaceSet></DescribeNetworkInterfacesResponse>"
            );
            (200, body)
        }
        "ReplaceRoute" if state.replace_denied => (
            403,
            error_xml(
                "UnauthorizedOperation",
                "You are not authorized to perform this operation.",
            ),
        ),
        "ReplaceRoute" => {
            let dest = params
                .get("DestinationCidrBlock")
                .or(params.get("DestinationIpv6CidrBlock"))
                .cloned()
                .unwrap_or_default();
            let dry_run = get("DryRun") == "true";
            let routes = state.tables.entry(get("RouteTableId")).or_default();
            match routes.iter_mut().find(|(d, _)| *d == dest) {
                // As EC2: permission and parameters checked, nothing changed.
                Some(_) if dry_run => (
                    412,
                    error_xml(
                        "DryRunOperation",
                        "Request would have succeeded, but DryRun flag is set.",
                    ),
                ),
                Some(route) => {
                    route.1 = get("NetworkInterfaceId");
                    (200, "<ReplaceRouteResponse><requestId>2</requestId><return>true</return></ReplaceRouteResponse>".into())
                }
                None => (
                    400,
                    error_xml(
                        "InvalidRoute.NotFound",
                        &format!("no route with destination-cidr-block {dest}"),
                    ),
                ),
            }
        }
        other => (
            400,
            error_xml(
                "InvalidAction",
                &format!("The action {other} is not valid for this web service."),
            ),
        ),
    }
}

/// How the fake answers the IMDSv2 token `PUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenReply {
    /// A token, as every instance does where the reply can reach the caller.
    #[default]
    Answer,
    /// No reply ever (held until the fake is dropped): the reply died one hop too far.
    Never,
    /// This HTTP status (403: IMDSv2 turned off; 404/405: an older or proxied service).
    Status(u16),
}

#[derive(Default)]
struct ImdsState {
    issued: u32,
    valid_tokens: Vec<String>,
    /// TTLs asked in token requests.
    ttls: Vec<String>,
    credential_fetches: u32,
    /// `Expiration` of the credentials handed out.
    expiration: String,
    /// Without a role, the role list answers 404.
    role: Option<String>,
    token_reply: TokenReply,
    token_requests: u32,
    /// Token-less reads are answered (IMDSv1, `HttpTokens=optional`); else 401.
    v1: bool,
    tokenless_requests: u32,
    /// Token requests never answered.
    held: Vec<Request>,
}

/// A fake instance metadata service: IMDSv2, and IMDSv1 when allowed.
pub struct FakeImds {
    state: Arc<Mutex<ImdsState>>,
    _server: Loopback,
    pub endpoint: String,
    /// A credential cache directory for the runs against this fake.
    pub cache: tempfile::TempDir,
}

pub const ROLE: &str = "csr-ha-role";

impl FakeImds {
    /// A metadata service whose role credentials expire at `expiration` (`2999-01-01T00:00:00Z`).
    pub fn start(expiration: &str) -> FakeImds {
        let state = Arc::new(Mutex::new(ImdsState {
            expiration: expiration.to_string(),
            role: Some(ROLE.into()),
            ..Default::default()
        }));
        let shared = Arc::clone(&state);
        let server = Loopback::bind().serve(move |mut request| {
            let mut state = shared.lock().expect("imds state");
            let is_token =
                request.method().as_str() == "PUT" && request.url() == "/latest/api/token";
            if is_token && state.token_reply == TokenReply::Never {
                state.token_requests += 1;
                state.held.push(request);
                return;
            }
            let (status, text) = imds_answer(&mut state, &mut request);
            let _ = request.respond(Response::from_string(text).with_status_code(status));
        });
        let endpoint = server.url.clone();
        FakeImds {
            cache: tempfile::tempdir().expect("cache dir"),
            state,
            _server: server,
            endpoint,
        }
    }

    /// How token requests are answered from now on.
    pub fn token_reply(&self, reply: TokenReply) {
        self.state.lock().expect("imds state").token_reply = reply;
    }

    /// Whether token-less reads (IMDSv1) are answered from now on.
    pub fn allow_v1(&self, allowed: bool) {
        self.state.lock().expect("imds state").v1 = allowed;
    }

    pub fn token_requests(&self) -> u32 {
        self.state.lock().expect("imds state").token_requests
    }

    /// Reads that came without a token (IMDSv1), answered or not.
    pub fn tokenless_requests(&self) -> u32 {
        self.state.lock().expect("imds state").tokenless_requests
    }

    /// Makes every token issued so far invalid, as when the instance restarts.
    pub fn revoke_tokens(&self) {
        self.state.lock().expect("imds state").valid_tokens.clear();
    }

    pub fn tokens_issued(&self) -> u32 {
        self.state.lock().expect("imds state").issued
    }

    pub fn credential_fetches(&self) -> u32 {
        self.state.lock().expect("imds state").credential_fetches
    }

    pub fn ttls(&self) -> Vec<String> {
        self.state.lock().expect("imds state").ttls.clone()
    }

    pub fn set_expiration(&self, expiration: &str) {
        self.state.lock().expect("imds state").expiration = expiration.to_string();
    }

    pub fn remove_role(&self) {
        self.state.lock().expect("imds state").role = None;
    }
}

fn imds_answer(state: &mut ImdsState, request: &mut Request) -> (u16, String) {
    let url = request.url().to_string();
    if request.method().as_str() == "PUT" && url == "/latest/api/token" {
        state.token_requests += 1;
        if let TokenReply::Status(status) = state.token_reply {
            return (status, String::new());
        }
        let Some(ttl) = header(request, "x-aws-ec2-metadata-token-ttl-seconds") else {
            return (400, "missing TTL".into());
        };
        state.ttls.push(ttl);
        state.issued += 1;
        let token = format!("imds-token-{}", state.issued);
        state.valid_tokens.push(token.clone());
        return (200, token);
    }
    match header(request, "x-aws-ec2-metadata-token") {
        None => {
            state.tokenless_requests += 1;
            if !state.v1 {
                return (401, String::new());
            }
        }
        Some(token) if !state.valid_tokens.contains(&token) => return (401, String::new()),
        Some(_) => {}
    }
    const PREFIX: &str = "/latest/meta-data/iam/security-credentials/";
    match (url.strip_prefix(PREFIX), state.role.clone()) {
        (Some(""), Some(role)) => (200, role),
        (Some(asked), Some(role)) if asked == role => {
            state.credential_fetches += 1;
            let n = state.credential_fetches;
            let body = format!(
                r#"{{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIAROLEKEY{n:05}","SecretAccessKey":"role-secret-{n}-do-not-leak","Token":"role-session-token-{n}-do-not-leak","Expiration":"{}"}}"#,
                state.expiration
            );
            (200, body)
        }
        _ => (404, String::new()),
    }
}
