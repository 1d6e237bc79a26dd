//! The one HTTP client of every cloud provider and credential source.
//!
//! [`Client::send`] sends a [`Request`] until it gets an answer worth handing back, with one
//! retry policy for all: connection errors (when the request may be sent again), 429 and 5xx
//! are retried after `Retry-After` or an exponential backoff with jitter, every wait and every
//! request's timeout clamped to the event's deadline. Each cloud adds only what it alone calls
//! "try again" (EC2's `RequestLimitExceeded` in a 400, ARM's 409 `AnotherOperationInProgress`).
//! An error answer becomes a [`CloudError`] in one place, [`Reply::error`], with the HTTP status
//! as a field; each cloud supplies only its error-body parser.
//!
//! Failures that another try cannot mend (a certificate the roots do not trust, a host name that
//! does not resolve, a CA bundle that cannot be read) are reported at once, with the fix, after
//! one try ([`failure`]); only those a moment can mend (refused or reset connections, timeouts)
//! are retried.
//!
//! The agent has explicit timeouts (ureq 3 has none by default), keeps error bodies (4xx/5xx are
//! answers, not transport errors), checks certificates with rustls against the built-in Mozilla
//! roots plus the system's CA bundle ([`system_roots`]), or the CA bundle the environment names
//! in their place ([`trust`]), and takes proxies from the
//! environment for cloud APIs but never for metadata services ([`Service`]).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::CloudError;
use crate::percent::{self, UNRESERVED};

mod failure;
pub mod proxy;
pub mod system_roots;
pub mod trust;

use failure::Failure;
use proxy::ProxySetting;
use system_roots::Roots;

/// Connect timeout, overridable by `CSR_HA_HTTP_CONNECT_TIMEOUT_MS`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Whole-request timeout, overridable by `CSR_HA_HTTP_TIMEOUT_MS`.
pub const GLOBAL_TIMEOUT: Duration = Duration::from_secs(5);

fn env_ms(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(default)
}

/// Who a client talks to, which says which CA bundle its certificates are checked against
/// ([`trust`]) and whether it goes through a proxy: cloud APIs and their login and token
/// endpoints take `HTTPS_PROXY`/`NO_PROXY` from the environment; metadata services are plain
/// HTTP on a link-local address a proxy could never reach, so they never use one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EC2 (and the IAM and STS calls tests make): `CSR_HA_CA_BUNDLE`, `AWS_CA_BUNDLE`,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`.
    Aws,
    /// Azure Resource Manager and the Azure AD login endpoint: `CSR_HA_CA_BUNDLE`,
    /// `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `SSL_CERT_DIR`.
    Azure,
    /// Compute Engine and Google's OAuth token endpoint: as [`Service::Azure`].
    Gcp,
    /// AWS IMDS, Azure IMDS, the GCE metadata server: never a proxy, no CA bundle.
    Metadata,
}

/// An agent with explicit timeouts that hands back 4xx/5xx responses with their bodies,
/// checking certificates against `roots` (`None`: the built-in Mozilla roots alone), through
/// `proxy`.
fn agent(proxy: Option<&ProxySetting>, roots: Option<&[Certificate<'static>]>) -> ureq::Agent {
    let proxy = proxy.map(|p| p.proxy.clone());
    let roots = match roots {
        Some(certs) => RootCerts::new_with_certs(certs),
        None => RootCerts::WebPki,
    };
    ureq::Agent::config_builder()
        .timeout_connect(Some(env_ms(
            "CSR_HA_HTTP_CONNECT_TIMEOUT_MS",
            CONNECT_TIMEOUT,
        )))
        .timeout_global(Some(env_ms("CSR_HA_HTTP_TIMEOUT_MS", GLOBAL_TIMEOUT)))
        .http_status_as_error(false)
        .proxy(proxy)
        .tls_config(TlsConfig::builder().root_certs(roots).build())
        .build()
        .into()
}

/// The first of `vars` that is set and not empty, else `default`, without a trailing `/`.
pub fn endpoint(vars: &[&str], default: &str) -> String {
    vars.iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// How long to wait before retry number `attempt` (0-based): exponential from 100 ms, capped at
/// 2 s, with up to 50 % jitter. `None` when waiting would pass the deadline.
pub fn backoff(attempt: u32, deadline: Instant) -> Option<Duration> {
    let base = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
        .min(Duration::from_secs(2));
    let jitter_nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(jitter_nanos % 500) / 1000.0);
    wait_within(base + jitter, deadline)
}

/// The least time left before the deadline in which a try is still sent.
const MIN_TRY: Duration = Duration::from_millis(50);

/// Whether `deadline` leaves no time for another try.
pub fn out_of_time(deadline: Instant) -> bool {
    deadline.saturating_duration_since(Instant::now()) < MIN_TRY
}

/// `wait` if sleeping that long still leaves time before `deadline` for one more try. The room
/// left is twice what a try needs ([`MIN_TRY`]): a sleep may end a little late, and a caller
/// told it may wait must find its next try sent, not refused for want of time.
pub fn wait_within(wait: Duration, deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    (now + wait + 2 * MIN_TRY < deadline).then_some(wait)
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

/// One request, described so that it can be sent again.
pub struct Request<'a> {
    method: Method,
    url: &'a str,
    headers: Vec<(&'a str, String)>,
    body: Option<Vec<u8>>,
    /// The server may hold the answer (a long poll): it gets the rest of the deadline.
    long_poll: bool,
    max_tries: u32,
    /// This request's own timeout, in place of the client's (a metadata token request).
    timeout: Option<Duration>,
    also_retry: Option<&'a dyn Fn(&Reply) -> bool>,
    /// Values this request carries that must never reach a message (see [`Request::secret`]).
    secrets: Vec<String>,
}

impl<'a> Request<'a> {
    pub fn new(method: Method, url: &'a str) -> Request<'a> {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
            long_poll: false,
            max_tries: u32::MAX,
            timeout: None,
            also_retry: None,
            secrets: Vec::new(),
        }
    }
    pub fn get(url: &'a str) -> Request<'a> {
        Request::new(Method::Get, url)
    }
    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Request<'a> {
        self.headers.push((name, value.into()));
        self
    }
    /// A header whose value is a secret (`Authorization`, a session token): see [`Self::secret`].
    pub fn secret_header(self, name: &'a str, value: impl Into<String>) -> Request<'a> {
        let value = value.into();
        let token = value.strip_prefix("Bearer ").map(str::to_string);
        let request = self.header(name, value.clone()).secret(value);
        match token {
            Some(token) => request.secret(token),
            None => request,
        }
    }

    /// Registers a value the request carries (a key in its form, a signed assertion) so that an
    /// error answer echoing it has it masked, in any encoding, before anyone reads the body.
    pub fn secret(mut self, value: impl Into<String>) -> Request<'a> {
        self.secrets.push(value.into());
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request<'a> {
        self.body = Some(body.into());
        self
    }
    pub fn json(self, body: String) -> Request<'a> {
        self.header("Content-Type", "application/json").body(body)
    }
    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, fields: &[(&str, &str)]) -> Request<'a> {
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    percent::encode(k, UNRESERVED),
                    percent::encode(v, UNRESERVED)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        self.header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }
    pub fn long_poll(mut self) -> Request<'a> {
        self.long_poll = true;
        self
    }
    /// At most `n` tries (a metadata service that is not there must not use the whole deadline).
    pub fn tries(mut self, n: u32) -> Request<'a> {
        self.max_tries = n.max(1);
        self
    }
    /// Each try waits at most `timeout` for the whole answer, instead of the client's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Request<'a> {
        self.timeout = Some(timeout);
        self
    }
    /// Answers the cloud also means as "try again", besides 429 and 5xx.
    pub fn retry_if(mut self, retry: &'a dyn Fn(&Reply) -> bool) -> Request<'a> {
        self.also_retry = Some(retry);
        self
    }
}

/// One answer, body read. No `Debug`: a body may hold a token.
pub struct Reply {
    pub status: u16,
    pub body: String,
    headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An answer as a fake server would give it, for parsers' unit tests.
    #[cfg(test)]
    pub fn for_test(status: u16, body: &str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `Retry-After` in seconds (the form ARM and GCP send), if present and sane.
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.min(60)))
    }

    /// The [`CloudError::Api`] for this answer: the cloud's code and message as `parse` reads
    /// them from the body, else `HTTP<status>` and the start of the body (a proxy's error page).
    pub fn error(&self, cloud: &'static str, parse: ErrorParser) -> CloudError {
        let (code, message) = parse(self.status, &self.body).unwrap_or_else(|| {
            let start: String = self
                .body
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(200)
                .collect();
            let message = if start.is_empty() {
                format!("HTTP status {} with no error body", self.status)
            } else {
                format!("HTTP status {}: {start}", self.status)
            };
            (format!("HTTP{}", self.status), message)
        });
        CloudError::Api {
            cloud,
            status: Some(self.status),
            code,
            message,
        }
    }
}

/// A cloud's error-body parser: `(code, message)` from an error answer's status and body, or
/// `None` if the body is not that cloud's error.
pub type ErrorParser = fn(u16, &str) -> Option<(String, String)>;

/// Why no answer came: the last connection error and how many tries were made.
#[derive(Debug, Clone)]
pub struct SendError {
    pub cause: String,
    pub tries: u32,
    /// Another try would fail the same way (an untrusted certificate, an unknown host, an
    /// unusable CA bundle): the cause says what to fix, and nothing was retried.
    pub permanent: bool,
    /// The last try got no answer within its timeout (an IMDSv2 token reply that died on the
    /// way, one hop too far: see `aws::auth`).
    pub timed_out: bool,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)?;
        if self.tries > 1 {
            write!(f, " (gave up after {} tries)", self.tries)?;
        }
        Ok(())
    }
}

impl SendError {
    /// The message for a provider's error: `cannot reach <what>: <cause>` for a failure of the
    /// network, the cause alone for a permanent one (it names the host and the fix already).
    pub fn reaching(&self, what: &str) -> String {
        self.unless_permanent(|e| format!("cannot reach {what}: {e}"))
    }

    /// The cause alone for a permanent failure (it names the host and the fix already), else
    /// the caller's `transient` words for a network that may answer next time.
    pub fn unless_permanent(&self, transient: impl FnOnce(&SendError) -> String) -> String {
        if self.permanent {
            self.to_string()
        } else {
            transient(self)
        }
    }
}

/// An agent and the count of requests it sent (benchmarks read it).
pub struct Client {
    agent: ureq::Agent,
    service: Service,
    /// What certificates are checked against, for messages about untrusted certificates.
    roots: Roots,
    /// The proxy cloud API calls go through, for messages about failed connections.
    proxy: Option<ProxySetting>,
    /// A CA bundle or a proxy was named but cannot be used: every send reports this, at once.
    unusable: Option<String>,
    timeout: Duration,
    requests: AtomicU32,
}

impl Client {
    /// A client for `service`, configured from the environment (CA bundle, proxy, timeouts).
    /// Never fails: a named CA bundle that cannot be read, or a proxy variable that cannot be
    /// used, is reported by every [`Client::send`].
    pub fn new(service: Service) -> Client {
        Client::with_env(service, &|name| std::env::var(name).ok())
    }

    /// [`Client::new`] with the CA variables looked up in `vars` instead of the process
    /// environment (a test preparing an emulator over HTTPS trusts its own CA with it). The
    /// proxy variables are always the process environment's.
    pub fn with_env(service: Service, vars: &dyn Fn(&str) -> Option<String>) -> Client {
        let (roots, certs, unusable_bundle) = match Roots::of(service, vars) {
            Roots::Named(bundle) => match trust::load(&bundle) {
                Ok(certs) => (Roots::Named(bundle), Some(certs), None),
                Err(message) => (Roots::Named(bundle), None, Some(message)),
            },
            Roots::BuiltIn | Roots::BuiltInAndSystem(_) => {
                match system_roots::load(service, vars) {
                    Some((path, certs)) => (Roots::BuiltInAndSystem(path), Some(certs), None),
                    None => (Roots::BuiltIn, None, None),
                }
            }
        };
        let (proxy, unusable_proxy) = match service {
            Service::Metadata => (None, None),
            Service::Aws | Service::Azure | Service::Gcp => {
                match proxy::from_env(&|name| std::env::var(name).ok()) {
                    Ok(proxy) => (proxy, None),
                    Err(message) => (None, Some(message)),
                }
            }
        };
        let agent = agent(proxy.as_ref(), certs.as_deref());
        let timeout = agent.config().timeouts().global.unwrap_or(GLOBAL_TIMEOUT);
        Client {
            agent,
            service,
            roots,
            proxy,
            unusable: unusable_bundle.or(unusable_proxy),
            timeout,
            requests: AtomicU32::new(0),
        }
    }

    /// What this client checks certificates against (`ha_api -c status` names it).
    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Requests sent so far, retries included.
    pub fn requests(&self) -> u32 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `request` until an answer that is not to be retried, or until the deadline or the
    /// request's tries are used up: then the last answer (for the caller to report with its
    /// code), or the last connection error.
    pub fn send(&self, request: &Request, deadline: Instant) -> Result<Reply, SendError> {
        if let Some(cause) = &self.unusable {
            return Err(SendError {
                cause: cause.clone(),
                tries: 0,
                permanent: true,
                timed_out: false,
            });
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let (wait, last) = match self.once(request, deadline) {
                Ok(reply) if self.retryable(request, &reply) => {
                    let wait = match reply.retry_after() {
                        Some(after) => wait_within(after, deadline),
                        None => backoff(tries - 1, deadline),
                    };
                    (wait, Ok(reply))
                }
                Ok(reply) => return Ok(reply),
                Err(failure) if !failure.permanent => (backoff(tries - 1, deadline), Err(failure)),
                Err(failure) => return Err(failure.after(tries)),
            };
            match wait.filter(|_| tries < request.max_tries) {
                Some(wait) => {
                    log::debug!(
                        "{:?} {}: try {} in {} ms",
                        request.method,
                        origin_of(request.url),
                        tries + 1,
                        wait.as_millis()
                    );
                    std::thread::sleep(wait);
                }
                None => return last.map_err(|failure| failure.after(tries)),
            }
        }
    }

    fn retryable(&self, request: &Request, reply: &Reply) -> bool {
        reply.status == 429
            || reply.status >= 500
            || request.also_retry.is_some_and(|retry| retry(reply))
    }

    /// One try, its timeout clamped to the deadline.
    fn once(&self, request: &Request, deadline: Instant) -> Result<Reply, Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        if out_of_time(deadline) {
            return Err(Failure::transient("the event's deadline passed"));
        }
        let timeout = if request.long_poll {
            left
        } else {
            request.timeout.unwrap_or(self.timeout).min(left)
        };
        let method = match request.method {
            Method::Get => ureq::http::Method::GET,
            Method::Put => ureq::http::Method::PUT,
            Method::Post => ureq::http::Method::POST,
            Method::Delete => ureq::http::Method::DELETE,
        };
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(request.url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value.as_str());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        // A request without a body sends none (not even `Content-Length: 0`).
        let result = match &request.body {
            Some(body) => self.run(builder.body(body.clone()), timeout),
            None => self.run(builder.body(()), timeout),
        };
        let mut response = result.map_err(|e| self.failure(request.url, e))?;
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let status = response.status().as_u16();
        let mut body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| Failure::transient(format!("reading the answer: {e}")))?;
        // An error answer is read to build messages; a success answer may rightly hold a token.
        if !(200..300).contains(&status) {
            let secrets: Vec<&str> = request.secrets.iter().map(String::as_str).collect();
            body = super::secret::mask(&body, &secrets);
        }
        Ok(Reply {
            status,
            body,
            headers,
        })
    }
}

impl Client {
    fn run<S: ureq::AsSendBody>(
        &self,
        request: Result<ureq::http::Request<S>, ureq::http::Error>,
        timeout: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let request = self
            .agent
            .configure_request(request?)
            .timeout_global(Some(timeout))
            .build();
        self.agent.run(request)
    }

    /// What went wrong with a request to `url`, in words that name the fix (and the proxy,
    /// when the request went through one).
    fn failure(&self, url: &str, error: ureq::Error) -> Failure {
        let via = self.proxy.as_ref().filter(|p| p.applies_to(url));
        Failure::of(&error, host_of(url), self.service, &self.roots, via)
    }
}

/// `host[:port]` of a URL, as a message names the server.
fn host_of(url: &str) -> &str {
    let origin = origin_of(url);
    origin.find("://").map_or(origin, |i| &origin[i + 3..])
}

/// `scheme://host[:port]` of a URL: where a request goes, without its path or query.
pub fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?']) {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_respects_the_deadline() {
        let far = Instant::now() + Duration::from_secs(60);
        let first = backoff(0, far).expect("first retry fits");
        let fourth = backoff(3, far).expect("fourth retry fits");
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(151));
        assert!(fourth >= Duration::from_millis(800));
        assert_eq!(
            backoff(0, Instant::now() + Duration::from_millis(100)),
            None
        );
    }
}
