//! Where ARM's bearer token comes from, in the original's order: the node's Azure AD app
//! (`-a -d -k`), else the default Azure AD app (`~/cloud/authMgr/aad_app_file`, see
//! `default_app.rs`), else the VM's managed identity (IMDS). Apps sign in with client
//! credentials on the Microsoft identity platform (v2.0) endpoint as MSAL and azure-identity
//! call it:
//!
//! ```text
//! IMDS  GET  {imds}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=<ARM resource>
//!            Metadata: true
//! AAD   POST {login}/{tenant}/oauth2/v2.0/token
//!            grant_type=client_credentials&client_id=…&client_secret=…&scope=<ARM resource>/.default
//!       200  {"token_type":"Bearer","expires_in":3599,"access_token":"eyJ…"}
//! ```
//!
//! Tokens are kept in the shared [`TokenCache`](crate::cloud::token_cache::TokenCache) until
//! [`token_cache::MARGIN`] before they expire. A token or
//! app key never appears in a log line, an error, or `Debug` output: they live in [`Secret`], and
//! every message built from a server's answer is scrubbed of the app key before it leaves.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;

use super::default_app::DefaultApp;
use super::{parse_error, segment, AzureConfig};
use crate::cloud::http::{self, Client, Method, Reply, Request, Service};
use crate::cloud::planner::required;
use crate::cloud::secret::{self, Secret};
use crate::cloud::token_cache::{self, CacheKey};
use crate::cloud::CloudError;
use crate::node::{Node, Param};
use crate::percent;

/// The IMDS managed-identity token API version (the one Microsoft documents for this endpoint).
pub const IMDS_API_VERSION: &str = "2018-02-01";

/// Where the bearer token comes from.
#[derive(Debug, Clone)]
pub(super) enum Credential {
    /// The VM's managed identity, from IMDS.
    ManagedIdentity,
    /// An Azure AD application: the node's own (`-a`, `-d`, `-k`) or the default app.
    App {
        tenant: String,
        app_id: String,
        key: Secret,
        /// The key as the node or the file holds it (it may be URL-encoded), masked as well.
        given: Secret,
        /// The default app's file, when the app is the default one.
        default_file: Option<PathBuf>,
    },
}

impl Credential {
    /// The node's credential, in the original's order: its own app (`-a -d -k`), else the
    /// default app (`default`, read from `~/cloud/authMgr/aad_app_file`), else the VM's managed
    /// identity. A default app of another cloud than the node's `-p` is refused, not skipped:
    /// skipping it would quietly change who the router acts as.
    pub fn of(node: &Node, default: Option<&DefaultApp>) -> Result<Credential, CloudError> {
        if let Some(app_id) = node.get(Param::AppId) {
            let given = required(node, Param::AppKey)?;
            return Ok(Credential::App {
                tenant: required(node, Param::TenantId)?.to_string(),
                app_id: app_id.to_string(),
                key: Secret::new(decode_app_key(given)),
                given: Secret::new(given),
                default_file: None,
            });
        }
        let Some(app) = default else {
            return Ok(Credential::ManagedIdentity);
        };
        if let Some(cloud) = node.azure_cloud().filter(|c| *c != app.cloud) {
            return Err(CloudError::Auth(format!(
                "the default Azure AD app ({}, {}) is for cloud {}, and this node's -p is {cloud}; give the node its own -a -d -k, or set_default_aad_app -p {cloud} …",
                app.describe(),
                app.path.display(),
                app.cloud
            )));
        }
        Ok(Credential::app(app, true))
    }

    /// `app`'s credential: as the default app (its messages name the file), or as an app
    /// being checked before it becomes the default (its messages name `-a -d -k`).
    pub fn app(app: &DefaultApp, as_default: bool) -> Credential {
        Credential::App {
            tenant: app.tenant_id.clone(),
            app_id: app.app_id.clone(),
            key: Secret::new(decode_app_key(app.app_key.expose())),
            given: app.app_key.clone(),
            default_file: as_default.then(|| app.path.clone()),
        }
    }

    /// Which credential this is, for `ha_api -c status` and the event log; never the key.
    pub fn describe(&self) -> String {
        match self {
            Credential::ManagedIdentity => "the VM's managed identity".to_string(),
            Credential::App {
                tenant,
                app_id,
                default_file: None,
                ..
            } => format!("the node's Azure AD app {app_id} in tenant {tenant} (-a -d -k)"),
            Credential::App {
                tenant,
                app_id,
                default_file: Some(path),
                ..
            } => format!(
                "the default Azure AD app {app_id} in tenant {tenant} ({})",
                path.display()
            ),
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
                    "app v2.0 {} {tenant} {app_id} {digest} {}",
                    config.login,
                    config.scope()
                )
            }
        }
    }

    pub fn scrub(&self, text: &str) -> String {
        match self {
            Credential::App { key, given, .. } => {
                secret::mask(text, &[key.expose(), given.expose()])
            }
            Credential::ManagedIdentity => text.to_string(),
        }
    }

    pub fn scrub_error(&self, error: CloudError) -> CloudError {
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

/// Seconds since the epoch, as a string or a number (IMDS sends strings, some clients numbers).
fn seconds(value: &Option<serde_json::Value>) -> Option<u64> {
    match value.as_ref()? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        serde_json::Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// How long a token with these `expires_on`/`expires_in` is valid from now.
fn token_lifetime(expires_on: Option<u64>, expires_in: Option<u64>, now_unix: u64) -> Duration {
    match (expires_on, expires_in) {
        (Some(on), _) if on > now_unix => Duration::from_secs(on - now_unix),
        (_, Some(secs)) => Duration::from_secs(secs),
        _ => Duration::ZERO,
    }
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

/// ARM's bearer tokens for one credential: from the shared cache, else fetched.
pub(super) struct Tokens {
    credential: Credential,
    config: AzureConfig,
}

impl Tokens {
    pub fn new(credential: Credential, config: AzureConfig) -> Tokens {
        Tokens { credential, config }
    }

    /// A bearer token, from the shared cache or fetched now.
    pub fn token(&self, deadline: Instant) -> Result<Secret, CloudError> {
        let key = self.key();
        self.config
            .cache
            .get_or_fetch(&key, token_cache::MARGIN, || self.fetch_token(deadline))
    }

    fn key(&self) -> CacheKey {
        CacheKey::new("azure-token", &[&self.credential.cache_key(&self.config)])
    }

    /// Drops a token ARM refused (revoked, or the clock is off), so the next call fetches one.
    pub fn forget(&self) {
        self.config.cache.forget(&self.key());
    }

    pub fn scrub(&self, text: &str) -> String {
        self.credential.scrub(text)
    }

    pub fn scrub_error(&self, error: CloudError) -> CloudError {
        self.credential.scrub_error(error)
    }

    fn fetch_token(&self, deadline: Instant) -> Result<(Secret, Duration), CloudError> {
        let (source, reply) = self.ask_for_token(deadline)?;
        self.token_from(&source, &reply)
    }

    /// Asks the managed identity (IMDS) or the login server (app credentials) for a token;
    /// returns who was asked, for messages, and the answer.
    fn ask_for_token(&self, deadline: Instant) -> Result<(String, Reply), CloudError> {
        let unreachable = |source: &str, e: http::SendError| {
            CloudError::Transport(self.credential.scrub(&e.reaching(source)))
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
                let reply = Client::new(Service::Metadata)
                    .send(&request, deadline)
                    .map_err(|e| unreachable(&source, e))?;
                (source, reply)
            }
            Credential::App {
                tenant,
                app_id,
                key,
                default_file,
                ..
            } => {
                let url = format!(
                    "{}/{}/oauth2/v2.0/token",
                    self.config.login,
                    segment(tenant.as_str())
                );
                let scope = self.config.scope();
                let request = Request::new(Method::Post, &url)
                    .header("Accept", "application/json")
                    .secret(key.expose())
                    .form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", app_id.as_str()),
                        ("client_secret", key.expose()),
                        ("scope", scope.as_str()),
                    ]);
                let which = if default_file.is_some() {
                    "the default Azure AD app"
                } else {
                    "Azure AD app"
                };
                let source = format!(
                    "{which} {app_id} in tenant {tenant} ({})",
                    self.config.login
                );
                let reply = Client::new(Service::Azure)
                    .send(&request, deadline)
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
                    "; give the VM a managed identity allowed to write the route table, give the node app credentials (-a -d -k), or set a default app with set_default_aad_app"
                }
                Credential::App {
                    default_file: None,
                    ..
                } => "; check the app id (-a), tenant (-d) and key (-k)",
                Credential::App {
                    default_file: Some(_),
                    ..
                } => "; this is the default Azure AD app: set it again with set_default_aad_app, clear it with clear_default_aad_app, or give the node its own -a -d -k",
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
    fn token_lifetime_keeps_a_margin() {
        let used =
            |on, r#in| token_cache::use_for(token_lifetime(on, r#in, 1_000), token_cache::MARGIN);
        assert_eq!(used(Some(1_000 + 3_600), None), Duration::from_secs(3_300));
        assert_eq!(used(None, Some(600)), Duration::from_secs(300));
        assert_eq!(used(Some(10), Some(120)), Duration::from_secs(60));
        assert_eq!(token_lifetime(None, None, 1_000), Duration::ZERO);
    }
    #[test]
    fn secrets_do_not_show_in_debug_or_scrubbed_text() {
        let credential = Credential::App {
            tenant: "t".into(),
            app_id: "a".into(),
            key: Secret::new("k3y-s3cret"),
            given: Secret::new("k3y%2Ds3cret"),
            default_file: None,
        };
        assert!(!format!("{credential:?}").contains("k3y-s3cret"));
        assert_eq!(
            credential.scrub("echo k3y-s3cret back, k3y%2Ds3cret too"),
            "echo ******** back, ******** too"
        );
    }
}
