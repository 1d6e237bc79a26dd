//! AWS credentials, looked for where the AWS tools look, in their order: each place is a
//! [`CredentialProvider`], and [`CredentialSources::providers`] is the list in that order:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`),
//!    profile `AWS_PROFILE`, else `default`;
//! 3. the instance's IAM role through IMDSv2:
//!
//! ```text
//! PUT <imds>/latest/api/token                      X-aws-ec2-metadata-token-ttl-seconds: 21600
//!   -> token
//! GET <imds>/latest/meta-data/iam/security-credentials/        X-aws-ec2-metadata-token: token
//!   -> role name
//! GET <imds>/latest/meta-data/iam/security-credentials/<role>  X-aws-ec2-metadata-token: token
//!   -> {"Code":"Success","AccessKeyId":..,"SecretAccessKey":..,"Token":..,"Expiration":"..Z"}
//! ```
//!
//! The token and the role's credentials are kept in the shared [`TokenCache`] (per metadata
//! endpoint, through its one call, [`TokenCache::get_or_fetch`]) until [`MARGIN`] (or half their
//! life) before they expire, so a server that runs many events pays the metadata round trips once per
//! few hours. A `401` from the metadata service means the token expired early (the instance was
//! stopped, the service restarted): the token is dropped and fetched again, once.
//!
//! **One hop away.** Guestshell is one routed hop behind IOS, and AWS sends the reply to the
//! token `PUT` with IP TTL = the instance's `HttpPutResponseHopLimit`, 1 by default: the reply
//! dies at the router. As botocore, the `PUT` waits [`IMDS_TOKEN_TIMEOUT`]
//! (`AWS_METADATA_SERVICE_TIMEOUT`, tried `AWS_METADATA_SERVICE_NUM_ATTEMPTS` times) and, on a
//! timeout or a 403/404/405, reads metadata without a token (IMDSv1) unless
//! `AWS_EC2_METADATA_V1_DISABLED=true`:
//!
//! ```text
//! PUT <imds>/latest/api/token        -- no reply within 1 s (TTL 1 ran out at IOS)
//! GET <imds>/latest/meta-data/iam/security-credentials/        (no token header)
//!   -> 200: used; remembered as aws-imds-v1-<hash> for the token TTL, so later handlers do not
//!           wait for the token again
//!   -> 401: the instance requires IMDSv2 (HttpTokens=required): the fallback is forgotten and
//!           the error names the hop limit and `aws ec2 modify-instance-metadata-options
//!           --instance-id <id> --http-put-response-hop-limit 2`
//! ```
//!
//! No secret leaves this module except into the signer: [`Credentials`]' `Debug` masks them and
//! no error message quotes a response body.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use crate::cloud::http::{self, Client, Method, Request, Service};
use crate::cloud::secret::Secret;
use crate::cloud::token_cache::{CacheKey, TokenCache, MARGIN};
use crate::cloud::CloudError;

use super::sigv4::Credentials;

/// Where credentials are looked for; [`CredentialSources::from_env`] fills it the AWS way, tests
/// fill it by hand so that no test touches the process environment.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// Keys from the environment, if both `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set.
    pub static_keys: Option<Credentials>,
    /// The shared credentials file; `None` when no home directory is known.
    pub shared_file: Option<PathBuf>,
    /// `AWS_PROFILE`; `None` means `default`, and a missing `default` profile is no error.
    pub profile: Option<String>,
    /// The instance metadata service; `None` when disabled (`AWS_EC2_METADATA_DISABLED=true`).
    pub imds: Option<ImdsConfig>,
    /// Where the role's credentials and the session token are kept between events. Keys from
    /// the environment or the shared file are read locally and never cached.
    pub cache: TokenCache,
}

/// Where the instance metadata service is and how long its session tokens should live.
#[derive(Debug, Clone)]
pub struct ImdsConfig {
    /// `http://169.254.169.254` or `AWS_EC2_METADATA_SERVICE_ENDPOINT`, without trailing `/`.
    pub endpoint: String,
    /// The TTL asked for each session token (IMDS accepts 1 s to 6 h).
    pub token_ttl: Duration,
    /// How long the token `PUT` waits for its reply before IMDSv1 is used
    /// (`AWS_METADATA_SERVICE_TIMEOUT`, seconds, as botocore reads it; 1 s).
    pub timeout: Duration,
    /// Tries of each metadata request (`AWS_METADATA_SERVICE_NUM_ATTEMPTS`); `None`: one for
    /// the token, as botocore, and [`IMDS_TRIES`] for the reads.
    pub attempts: Option<u32>,
    /// `AWS_EC2_METADATA_V1_DISABLED=true`: no IMDSv1 fallback.
    pub v1_disabled: bool,
}

impl ImdsConfig {
    /// The metadata service at `endpoint`, with botocore's defaults.
    pub fn new(endpoint: &str) -> ImdsConfig {
        ImdsConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token_ttl: IMDS_TOKEN_TTL,
            timeout: IMDS_TOKEN_TIMEOUT,
            attempts: None,
            v1_disabled: false,
        }
    }

    /// [`ImdsConfig::new`] with the variables botocore reads from `var`.
    fn from_vars(endpoint: &str, var: &dyn Fn(&str) -> Option<String>) -> ImdsConfig {
        let timeout = var("AWS_METADATA_SERVICE_TIMEOUT")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(IMDS_TOKEN_TIMEOUT, Duration::from_secs_f64);
        ImdsConfig {
            timeout,
            attempts: var("AWS_METADATA_SERVICE_NUM_ATTEMPTS")
                .and_then(|v| v.trim().parse::<u32>().ok())
                .filter(|n| *n > 0),
            v1_disabled: var("AWS_EC2_METADATA_V1_DISABLED")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            ..ImdsConfig::new(endpoint)
        }
    }
}

/// The metadata service's address on every EC2 instance.
pub const IMDS_DEFAULT: &str = "http://169.254.169.254";
/// Tokens are asked for the longest TTL IMDS grants.
pub const IMDS_TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// How long the token `PUT` waits for its reply, as botocore (`AWS_METADATA_SERVICE_TIMEOUT`).
pub const IMDS_TOKEN_TIMEOUT: Duration = Duration::from_secs(1);
/// The metadata service's address when `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`.
pub const IMDS_DEFAULT_IPV6: &str = "http://[fd00:ec2::254]";
/// How many times one metadata request is tried (a machine without a metadata service must not
/// spend the whole event deadline finding out).
const IMDS_TRIES: u32 = 2;

/// How [`CredentialSources::resolve`] names credentials of the instance's role.
const ROLE_SOURCE: &str = "instance role";

/// What [`CredentialSources::resolve`] found.
pub(super) struct Resolved {
    pub credentials: Credentials,
    /// Where they came from, for the log: `environment`, `<file> [profile]`,
    /// `instance role via <endpoint>`.
    pub source: String,
    /// They came through the shared cache ([`CredentialProvider::caches`]): when AWS refuses
    /// them, [`CredentialSources::forget`] and one more [`CredentialSources::resolve`] may help.
    pub cached: bool,
}

/// What one provider answers.
pub(super) enum Lookup {
    Found(Credentials),
    /// Nothing here, and why, for `no AWS credentials found: …`: the next provider is asked.
    Absent(String),
}

/// One place AWS credentials may come from. [`CredentialSources::providers`] lists them in
/// botocore's order and [`CredentialSources::resolve`] asks each in turn: a new source is one
/// more provider in that list, and nothing else changes.
pub(super) trait CredentialProvider {
    /// Where the credentials it finds come from, for the log.
    fn name(&self) -> String;
    /// Its credentials, [`Lookup::Absent`] when it has none (the next one is asked), or an
    /// error when it is configured but broken (a named profile missing, a key without its
    /// secret): then no other is asked, as botocore stops there too.
    fn lookup(&self, deadline: Instant) -> Result<Lookup, CloudError>;
    /// Whether what it finds is kept in the shared cache.
    fn caches(&self) -> bool {
        false
    }
    /// Drops what it keeps in the shared cache, after AWS refused it.
    fn forget(&self) {}
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
struct Environment<'a>(Option<&'a Credentials>);

impl CredentialProvider for Environment<'_> {
    fn name(&self) -> String {
        "environment".into()
    }

    fn lookup(&self, _deadline: Instant) -> Result<Lookup, CloudError> {
        Ok(match self.0 {
            Some(keys) => Lookup::Found(keys.clone()),
            None => Lookup::Absent("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set".into()),
        })
    }
}

/// Keys of the profile in the shared credentials file.
struct SharedFile<'a> {
    path: Option<&'a Path>,
    profile: &'a str,
    /// The profile was named (`AWS_PROFILE`): a missing file or profile is an error.
    explicit: bool,
}

impl CredentialProvider for SharedFile<'_> {
    fn name(&self) -> String {
        let path = self.path.map(Path::display);
        format!(
            "{} [{}]",
            path.map(|p| p.to_string()).unwrap_or_default(),
            self.profile
        )
    }

    fn lookup(&self, _deadline: Instant) -> Result<Lookup, CloudError> {
        let Some(path) = self.path else {
            return Ok(Lookup::Absent(
                "no shared credentials file (HOME not set)".into(),
            ));
        };
        Ok(match from_file(path, self.profile, self.explicit)? {
            Some(keys) => Lookup::Found(keys),
            None => Lookup::Absent(format!(
                "no profile [{}] in {}",
                self.profile,
                path.display()
            )),
        })
    }
}

/// The instance's IAM role, through the metadata service; kept in the shared cache.
struct InstanceRole<'a> {
    imds: Option<&'a ImdsConfig>,
    cache: &'a TokenCache,
}

impl CredentialProvider for InstanceRole<'_> {
    fn name(&self) -> String {
        let endpoint = self.imds.map(|i| i.endpoint.as_str()).unwrap_or_default();
        format!("{ROLE_SOURCE} via {endpoint}")
    }

    fn lookup(&self, deadline: Instant) -> Result<Lookup, CloudError> {
        let Some(imds) = self.imds else {
            return Ok(Lookup::Absent(
                "instance metadata disabled (AWS_EC2_METADATA_DISABLED)".into(),
            ));
        };
        Ok(match from_imds(imds, self.cache, deadline) {
            Ok(keys) => Lookup::Found(keys),
            Err(e) => Lookup::Absent(format!("instance role: {e}")),
        })
    }

    fn caches(&self) -> bool {
        true
    }

    /// The role's credentials and the session token.
    fn forget(&self) {
        if let Some(imds) = self.imds {
            self.cache.forget(&role_key(imds));
            self.cache.forget(&token_key(imds));
        }
    }
}

impl CredentialSources {
    /// The providers in botocore's order: the environment, the shared credentials file, the
    /// instance role.
    pub(super) fn providers(&self) -> Vec<Box<dyn CredentialProvider + '_>> {
        vec![
            Box::new(Environment(self.static_keys.as_ref())),
            Box::new(SharedFile {
                path: self.shared_file.as_deref(),
                profile: self.profile.as_deref().unwrap_or("default"),
                explicit: self.profile.is_some(),
            }),
            Box::new(InstanceRole {
                imds: self.imds.as_ref(),
                cache: &self.cache,
            }),
        ]
    }

    /// Drops every cached credential, so the next [`CredentialSources::resolve`] fetches anew.
    pub(super) fn forget(&self) {
        for provider in self.providers() {
            provider.forget();
        }
    }

    /// The first provider's credentials, and where they came from.
    pub(super) fn resolve(&self, deadline: Instant) -> Result<Resolved, CloudError> {
        let mut tried = Vec::new();
        for provider in self.providers() {
            match provider.lookup(deadline)? {
                Lookup::Found(credentials) => {
                    return Ok(Resolved {
                        credentials,
                        source: provider.name(),
                        cached: provider.caches(),
                    })
                }
                Lookup::Absent(why) => tried.push(why),
            }
        }
        Err(CloudError::Auth(format!(
            "no AWS credentials found: {}",
            tried.join("; ")
        )))
    }

    pub fn from_env(cache: TokenCache) -> CredentialSources {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let static_keys = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(Credentials::new(
                id.trim(),
                secret.trim(),
                var("AWS_SESSION_TOKEN").as_deref(),
            )),
            (Some(_), None) => {
                log::warn!(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: ignoring both"
                );
                None
            }
            _ => None,
        };
        let shared_file = var("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".aws").join("credentials")));
        let imds_disabled =
            var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let ipv6 = var("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
            .is_some_and(|m| m.eq_ignore_ascii_case("ipv6"));
        let default = if ipv6 {
            IMDS_DEFAULT_IPV6
        } else {
            IMDS_DEFAULT
        };
        let imds = (!imds_disabled).then(|| {
            let endpoint = http::endpoint(&["AWS_EC2_METADATA_SERVICE_ENDPOINT"], default);
            ImdsConfig::from_vars(&endpoint, &var)
        });
        CredentialSources {
            static_keys,
            shared_file,
            profile: var("AWS_PROFILE"),
            imds,
            cache,
        }
    }
}

/// Keys of `profile` in a shared credentials file. A missing file or profile is `None` unless
/// the profile was asked for by name; a profile without both keys is an error.
fn from_file(
    path: &Path,
    profile: &str,
    explicit: bool,
) -> Result<Option<Credentials>, CloudError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => {
            return Err(CloudError::Auth(format!(
                "cannot read {} (AWS_PROFILE={profile}): {e}",
                path.display()
            )))
        }
    };
    let sections = parse_ini(&text);
    let wanted = [profile.to_string(), format!("profile {profile}")];
    let Some(keys) = wanted.iter().find_map(|name| sections.get(name)) else {
        if explicit {
            return Err(CloudError::Auth(format!(
                "profile [{profile}] (AWS_PROFILE) not found in {}",
                path.display()
            )));
        }
        return Ok(None);
    };
    let get = |k: &str| keys.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            Ok(Some(Credentials::new(id, secret, get("aws_session_token"))))
        }
        _ => Err(CloudError::Auth(format!(
            "profile [{profile}] in {} lacks aws_access_key_id or aws_secret_access_key",
            path.display()
        ))),
    }
}

/// `[section]` headers and `key = value` lines; `#` and `;` start comments.
fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            if let Some(keys) = sections.get_mut(section) {
                keys.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
    }
    sections
}

/// Why a metadata request failed.
enum ImdsError {
    /// The token was refused (expired or revoked), or an IMDSv1 fallback another handler
    /// remembered no longer works: fetch a new token and try again.
    Unauthorized,
    /// The token request failed as `Fallback` says, and the IMDSv1 read that followed was
    /// refused (401: the instance requires IMDSv2, `HttpTokens=required`).
    V1Refused(Fallback),
    Other(String),
}

impl ImdsError {
    fn to_message(&self, config: &ImdsConfig) -> String {
        match self {
            ImdsError::Unauthorized => {
                "the metadata service refused a fresh session token (401)".to_string()
            }
            ImdsError::V1Refused(fallback) => fallback.no_token(
                config,
                "the instance refuses IMDSv1 (HttpTokens=required: the token-less request got 401)",
            ),
            ImdsError::Other(m) => m.clone(),
        }
    }
}

/// How this event reads metadata: with an IMDSv2 session token, or without one (IMDSv1), as
/// botocore does when the token request times out or is refused.
enum Session {
    V2(String),
    /// `cached`: another handler fell back and remembered it; a 401 means that is over.
    V1 {
        fallback: Fallback,
        cached: bool,
    },
}

/// Why IMDSv1 is used: how the token request failed. Kept in the cache (`aws-imds-v1`) for as
/// long as a token would have lived, so later handlers do not wait for the token again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fallback {
    /// No reply within the token timeout: on a router, the reply's IP TTL (the instance's
    /// `HttpPutResponseHopLimit`, 1 by default) ran out at IOS, one hop before guestshell.
    timed_out: bool,
    /// The token request's failure as it was seen (`timeout: global`, `HTTP 403`).
    why: String,
    /// The token timeout in force, for messages.
    timeout_ms: u64,
}

impl Fallback {
    /// The message when no token came and IMDSv1 cannot be used (`v1`: why not), naming the
    /// cause and the fix.
    fn no_token(&self, config: &ImdsConfig, v1: &str) -> String {
        let put = format!("PUT {}/latest/api/token", config.endpoint);
        if self.timed_out {
            format!(
                "the reply to the IMDSv2 token request ({put}) did not arrive within {} and {v1}: \
                 the instance's metadata hop limit (HttpPutResponseHopLimit) is probably 1 while \
                 guestshell is one hop behind the router; raise it: {HOP_LIMIT_FIX}",
                seconds(self.timeout_ms)
            )
        } else {
            format!(
                "the IMDSv2 token request ({put}) was refused ({}) and {v1}: check the \
                 instance's metadata options (aws ec2 describe-instances --query \
                 'Reservations[].Instances[].MetadataOptions')",
                self.why
            )
        }
    }
}

/// The command that lets the token reply reach guestshell, one hop behind IOS.
pub const HOP_LIMIT_FIX: &str = "aws ec2 modify-instance-metadata-options --instance-id <id> \
     --http-put-response-hop-limit 2";

/// `1 s`, `1.5 s`.
fn seconds(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{} s", ms as f64 / 1000.0)
    }
}

impl CredentialSources {
    /// Why metadata is read with IMDSv1 now, if it is because the token reply never came (the
    /// hop limit): a warning for dry runs and the check job, with the fix. `None` on IMDSv2.
    pub fn imds_v1_warning(&self) -> Option<String> {
        let imds = self.imds.as_ref()?;
        let fallback = remembered_fallback(imds, &self.cache)?;
        fallback.timed_out.then(|| {
            format!(
                "instance metadata read with IMDSv1: the reply to the IMDSv2 token request did \
                 not arrive within {} (the instance's metadata hop limit is probably 1 while \
                 guestshell is one hop behind the router); to use IMDSv2: {HOP_LIMIT_FIX}",
                seconds(fallback.timeout_ms)
            )
        })
    }
}

/// The role's credentials from the shared cache, else from the metadata service (kept until
/// [`MARGIN`] before they expire). A session token the service refuses (401) is replaced once.
fn from_imds(
    config: &ImdsConfig,
    cache: &TokenCache,
    deadline: Instant,
) -> Result<Credentials, String> {
    let key = role_key(config);
    let agent = Client::new(Service::Metadata);
    let fetch = || {
        let (keys, lifetime) = match fetch_role_credentials(&agent, config, cache, deadline, false)
        {
            Err(ImdsError::Unauthorized) => {
                log::info!(
                    "instance metadata at {}: session token refused, fetching a new one",
                    config.endpoint
                );
                fetch_role_credentials(&agent, config, cache, deadline, true)
            }
            other => other,
        }
        .map_err(|e| e.to_message(config))?;
        Ok::<_, String>((encode(&keys), lifetime))
    };
    let value = cache.get_or_fetch(&key, MARGIN, fetch)?;
    decode(&value).ok_or_else(|| {
        cache.forget(&key);
        "the cached role credentials were unreadable: forgotten, fetched again at the next event"
            .to_string()
    })
}

fn role_key(config: &ImdsConfig) -> CacheKey {
    CacheKey::new("aws-role", &[&config.endpoint])
}

fn token_key(config: &ImdsConfig) -> CacheKey {
    CacheKey::new("aws-imds-token", &[&config.endpoint])
}

/// Where the IMDSv1 fallback is remembered (its kind is what `ha_api -c status` shows).
fn v1_key(config: &ImdsConfig) -> CacheKey {
    CacheKey::new(IMDS_V1_KIND, &[&config.endpoint])
}

/// The cache kind that says metadata is read with IMDSv1.
pub const IMDS_V1_KIND: &str = "aws-imds-v1";

/// The IMDSv1 fallback another handler remembered, if it still stands: the cached value, and
/// nothing to fetch when there is none.
fn remembered_fallback(config: &ImdsConfig, cache: &TokenCache) -> Option<Fallback> {
    let nothing = || Err::<(Secret, Duration), ()>(());
    let value = cache.get_or_fetch(&v1_key(config), MARGIN, nothing).ok()?;
    serde_json::from_str(value.expose()).ok()
}

/// Role credentials as the cache keeps them: the metadata service's own field names.
fn encode(keys: &Credentials) -> Secret {
    Secret::new(
        serde_json::json!({
            "AccessKeyId": keys.access_key_id,
            "SecretAccessKey": keys.secret_access_key.expose(),
            "Token": keys.session_token.as_ref().map(Secret::expose),
        })
        .to_string(),
    )
}

fn decode(value: &Secret) -> Option<Credentials> {
    let parsed: RoleCredentials = serde_json::from_str(value.expose()).ok()?;
    Some(Credentials::new(
        &parsed.access_key_id?,
        &parsed.secret_access_key?,
        parsed.token.as_deref(),
    ))
}

/// The role's credentials and how long they are valid from now.
fn fetch_role_credentials(
    agent: &Client,
    config: &ImdsConfig,
    cache: &TokenCache,
    deadline: Instant,
    fresh_token: bool,
) -> Result<(Credentials, Duration), ImdsError> {
    let session = session(agent, config, cache, deadline, fresh_token)?;
    const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
    let roles = imds_get(agent, config, cache, &session, ROLES, deadline)?;
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(ImdsError::Other(format!(
            "{}{ROLES} lists no IAM role: attach one to the instance",
            config.endpoint
        )));
    };
    let path = format!("{ROLES}{role}");
    let body = imds_get(agent, config, cache, &session, &path, deadline)?;
    parse_role_credentials(&body, role).map_err(ImdsError::Other)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// How long credentials without an `Expiration` are taken to be valid (used for half of it).
const UNDATED_LIFETIME: Duration = Duration::from_secs(600);

/// The credentials in the metadata service's answer and how long they are valid from now
/// (zero: expired or about to, used once and not kept).
fn parse_role_credentials(body: &str, role: &str) -> Result<(Credentials, Duration), String> {
    // The body holds the secret: the error quotes only where parsing stopped.
    let parsed: RoleCredentials = serde_json::from_str(body).map_err(|e| {
        format!(
            "credentials of role {role} are not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    if let Some(code) = parsed.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!(
            "credentials of role {role} not available: Code {code}"
        ));
    }
    let (Some(id), Some(secret)) = (parsed.access_key_id, parsed.secret_access_key) else {
        return Err(format!(
            "credentials of role {role} lack AccessKeyId or SecretAccessKey"
        ));
    };
    let keys = Credentials::new(&id, &secret, parsed.token.as_deref());
    let lifetime = match parsed
        .expiration
        .as_deref()
        .map(crate::timestamp::parse_utc)
    {
        Some(Some(expires)) => expires
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
        Some(None) => {
            return Err(format!(
                "credentials of role {role} have an unreadable Expiration"
            ))
        }
        None => UNDATED_LIFETIME,
    };
    Ok((keys, lifetime))
}

/// The cached session token or IMDSv1 fallback, else a new token from `PUT /latest/api/token`
/// (waiting [`ImdsConfig::timeout`] for it), else IMDSv1 where botocore would fall back. Both
/// are kept for as long as a token would live; `fresh` drops a token the service refused.
fn session(
    agent: &Client,
    config: &ImdsConfig,
    cache: &TokenCache,
    deadline: Instant,
    fresh: bool,
) -> Result<Session, ImdsError> {
    let key = token_key(config);
    if fresh {
        cache.forget(&key);
    } else if let Some(fallback) =
        remembered_fallback(config, cache).filter(|_| !config.v1_disabled)
    {
        return Ok(Session::V1 {
            fallback,
            cached: true,
        });
    }
    let ttl = Duration::from_secs(
        config
            .token_ttl
            .as_secs()
            .clamp(1, IMDS_TOKEN_TTL.as_secs()),
    );
    let fallback =
        match cache.get_or_fetch(&key, MARGIN, || request_token(agent, config, ttl, deadline)) {
            Ok(token) => {
                cache.forget(&v1_key(config));
                return Ok(Session::V2(token.expose().to_string()));
            }
            Err(NoToken::Failed(e)) => return Err(e),
            Err(NoToken::Fallback(fallback)) => fallback,
        };
    if config.v1_disabled {
        return Err(ImdsError::Other(fallback.no_token(
            config,
            "IMDSv1 is disabled here (AWS_EC2_METADATA_V1_DISABLED=true)",
        )));
    }
    log::warn!(
        "instance metadata at {}: no IMDSv2 token ({}): reading it with IMDSv1",
        config.endpoint,
        fallback.why
    );
    let value = Secret::new(serde_json::to_string(&fallback).unwrap_or_default());
    let remember = || Ok::<_, ()>((value, ttl));
    let _ = cache.get_or_fetch(&v1_key(config), MARGIN, remember);
    Ok(Session::V1 {
        fallback,
        cached: false,
    })
}

/// Why no token came back from `PUT /latest/api/token`.
enum NoToken {
    /// botocore's rule: a timeout or a 403/404/405 means "no IMDSv2 here", not "broken".
    Fallback(Fallback),
    Failed(ImdsError),
}

/// A new session token for `ttl`, and how long it lives.
fn request_token(
    agent: &Client,
    config: &ImdsConfig,
    ttl: Duration,
    deadline: Instant,
) -> Result<(Secret, Duration), NoToken> {
    let url = format!("{}/latest/api/token", config.endpoint);
    let request = Request::new(Method::Put, &url)
        .header(
            "X-aws-ec2-metadata-token-ttl-seconds",
            ttl.as_secs().to_string(),
        )
        .body(Vec::new())
        .timeout(config.timeout)
        .tries(config.attempts.unwrap_or(1));
    let fallback = |timed_out: bool, why: String| {
        NoToken::Fallback(Fallback {
            timed_out,
            why,
            timeout_ms: config.timeout.as_millis() as u64,
        })
    };
    let failed = |why: String| NoToken::Failed(ImdsError::Other(why));
    match agent.send(&request, deadline) {
        Ok(reply) if reply.status == 200 => {
            let token = reply.body.trim().to_string();
            if token.is_empty() {
                return Err(failed(format!("{url} answered an empty session token")));
            }
            Ok((Secret::new(token), ttl))
        }
        Ok(reply) if matches!(reply.status, 403..=405) => {
            Err(fallback(false, format!("HTTP {}", reply.status)))
        }
        Ok(reply) => Err(failed(format!(
            "instance metadata {url}: HTTP {}",
            reply.status
        ))),
        Err(e) if e.timed_out => Err(fallback(true, e.to_string())),
        Err(e) => Err(failed(format!("instance metadata {url}: {e}"))),
    }
}

/// One metadata read with `session`'s token, or none (IMDSv1). A 401 on a token-less read
/// forgets the fallback: the instance requires IMDSv2 now.
fn imds_get(
    agent: &Client,
    config: &ImdsConfig,
    cache: &TokenCache,
    session: &Session,
    path: &str,
    deadline: Instant,
) -> Result<String, ImdsError> {
    let url = format!("{}{path}", config.endpoint);
    let request = match session {
        Session::V2(token) => Request::get(&url).secret_header("X-aws-ec2-metadata-token", token),
        Session::V1 { .. } => Request::get(&url),
    };
    match (
        imds_request(agent, config, path, request, deadline),
        session,
    ) {
        (Err(ImdsError::Unauthorized), Session::V1 { fallback, cached }) => {
            cache.forget(&v1_key(config));
            Err(if *cached {
                ImdsError::Unauthorized
            } else {
                ImdsError::V1Refused(fallback.clone())
            })
        }
        (result, _) => result,
    }
}

/// One metadata read, tried [`ImdsConfig::attempts`] times on connection errors and 5xx.
fn imds_request(
    agent: &Client,
    config: &ImdsConfig,
    path: &str,
    request: Request,
    deadline: Instant,
) -> Result<String, ImdsError> {
    let where_ = format!("instance metadata {}{path}", config.endpoint);
    let request = request.tries(config.attempts.unwrap_or(IMDS_TRIES));
    let reply = agent
        .send(&request, deadline)
        .map_err(|e| ImdsError::Other(format!("{where_}: {e}")))?;
    match reply.status {
        200 => Ok(reply.body),
        401 => Err(ImdsError::Unauthorized),
        404 if path.contains("security-credentials") => Err(ImdsError::Other(format!(
            "{where_}: 404, no IAM role is attached to this instance"
        ))),
        status => Err(ImdsError::Other(format!("{where_}: HTTP {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_secrets() {
        let keys = Credentials::new(
            "AKIAEXAMPLE",
            "very-secret-key",
            Some("session-token-value"),
        );
        let shown = format!("{keys:?}");
        assert!(shown.contains("AKIAEXAMPLE"));
        assert!(
            !shown.contains("very-secret-key") && !shown.contains("session-token-value"),
            "{shown}"
        );
        let sources = CredentialSources {
            static_keys: Some(keys),
            ..Default::default()
        };
        assert!(!format!("{sources:?}").contains("very-secret-key"));
    }

    #[test]
    fn shared_file_profiles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("credentials");
        std::fs::write(
            &path,
            "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
             [ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=s2\naws_session_token = t2\n[broken]\naws_access_key_id=x\n",
        )
        .expect("write");
        let keys = from_file(&path, "default", false)
            .expect("ok")
            .expect("found");
        assert_eq!(
            (keys.access_key_id.as_str(), keys.session_token),
            ("AKIADEFAULT", None)
        );
        let keys = from_file(&path, "ops", true).expect("ok").expect("found");
        assert_eq!(keys.session_token, Some(Secret::new("t2")));
        assert_eq!(from_file(&path, "nothere", false), Ok(None));
        let err = from_file(&path, "nothere", true).expect_err("explicit profile must exist");
        assert!(
            err.to_string()
                .contains("profile [nothere] (AWS_PROFILE) not found"),
            "{err}"
        );
        let err = from_file(&path, "broken", false).expect_err("half a profile");
        assert!(
            err.to_string()
                .contains("lacks aws_access_key_id or aws_secret_access_key"),
            "{err}"
        );
        assert_eq!(
            from_file(&dir.path().join("none"), "default", false),
            Ok(None)
        );
    }

    #[test]
    fn metadata_variables_are_read_as_botocore_reads_them() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let config = ImdsConfig::from_vars("http://imds/", &vars(&[]));
        assert_eq!(config.endpoint, "http://imds");
        assert_eq!(
            (config.timeout, config.attempts, config.v1_disabled),
            (Duration::from_secs(1), None, false)
        );
        let config = ImdsConfig::from_vars(
            "http://imds",
            &vars(&[
                ("AWS_METADATA_SERVICE_TIMEOUT", "2.5"),
                ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "3"),
                ("AWS_EC2_METADATA_V1_DISABLED", "TRUE"),
            ]),
        );
        assert_eq!(
            (config.timeout, config.attempts, config.v1_disabled),
            (Duration::from_millis(2500), Some(3), true)
        );
        let config = ImdsConfig::from_vars(
            "http://imds",
            &vars(&[
                ("AWS_METADATA_SERVICE_TIMEOUT", "-1"),
                ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "0"),
                ("AWS_EC2_METADATA_V1_DISABLED", "false"),
            ]),
        );
        assert_eq!(
            (config.timeout, config.attempts, config.v1_disabled),
            (IMDS_TOKEN_TIMEOUT, None, false)
        );
        assert_eq!(
            (seconds(1000), seconds(1500)),
            ("1 s".into(), "1.5 s".into())
        );
    }

    #[test]
    fn role_credentials_parse_and_expire() {
        let body = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIA1","SecretAccessKey":"sek","Token":"tok","Expiration":"2999-01-01T00:00:00Z"}"#;
        let (keys, until) = parse_role_credentials(body, "r").expect("parses");
        assert_eq!(keys.session_token, Some(Secret::new("tok")));
        assert!(until > Duration::from_secs(3600), "{until:?}");
        let soon = r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"sek","Token":"tok","Expiration":"2000-01-01T00:00:00Z"}"#;
        assert_eq!(
            parse_role_credentials(soon, "r").map(|(_, u)| u),
            Ok(Duration::ZERO),
            "expired: used once, not kept"
        );
        let err = parse_role_credentials(r#"{"AccessKeyId":"ASIA1","SecretAccessKey":"sek""#, "r")
            .expect_err("truncated");
        assert!(!err.contains("sek"), "{err}");
        let err = parse_role_credentials(r#"{"Code":"Failure"}"#, "r").expect_err("failed code");
        assert!(err.contains("Code Failure"));
    }
}
