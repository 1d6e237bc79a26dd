//! OAuth2 access tokens for the Compute API, from the metadata server or a credentials file: a
//! service-account key, or the `authorized_user` credentials `gcloud auth application-default
//! login` writes (a user's refresh token), as google-auth reads them.
//!
//! ```text
//! metadata server   GET http://<GCE_METADATA_HOST>/computeMetadata/v1/instance/service-accounts/default/token
//!                   Metadata-Flavor: Google          (never through a proxy)
//! service_account   POST <token_uri>  grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
//!                                     assertion=<RS256 JWT signed with the key's private_key>
//! authorized_user   POST <token_uri>  grant_type=refresh_token&client_id=…&client_secret=…&refresh_token=…
//!                   (token_uri: the file's, else https://oauth2.googleapis.com/token)
//! all answer        {"access_token":"…","expires_in":3599,"token_type":"Bearer"}
//! ```
//!
//! Tokens are kept in the shared [`TokenCache`], per source, until [`token_cache::MARGIN`] before
//! they expire, so only the first event of the hour asks. No token, assertion or key ever reaches a log line, an error
//! or a `Debug` output: the types that hold them implement `Debug` by hand.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde::Deserialize;

use crate::cloud::http::{Client, Method, Request, Service};
use crate::cloud::secret::Secret;
use crate::cloud::token_cache::{self, CacheKey, TokenCache};
use crate::cloud::CloudError;

/// The scopes a key file's token asks for: `compute` to read, insert and delete routes, and
/// `cloud-platform.read-only` for a dry run's Resource Manager `testIamPermissions` (which
/// `compute` alone does not cover). Space-separated, as the JWT grant takes them. A metadata
/// server token has the VM's own scopes.
const SCOPE: &str = "https://www.googleapis.com/auth/compute https://www.googleapis.com/auth/cloud-platform.read-only";

/// Where tokens come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The VM's default service account, `host[:port]` of the metadata server.
    Metadata(String),
    /// A credentials file (`credentials.json`, gcloud's
    /// `application_default_credentials.json`): a service-account key or `authorized_user`.
    KeyFile(PathBuf),
}

impl Source {
    /// The metadata server, or the key file's path and a digest of its content, so that a
    /// replaced key file never reuses a token obtained with the old key.
    fn cache_key(&self) -> CacheKey {
        match self {
            Source::Metadata(host) => CacheKey::new("gcp-token", &["metadata", host]),
            Source::KeyFile(path) => {
                use sha2::Digest;
                let content = std::fs::read(path).unwrap_or_default();
                let digest = hex::encode(sha2::Sha256::digest(&content));
                let shown = path.display().to_string();
                CacheKey::new("gcp-token", &["key", &shown, &digest, SCOPE])
            }
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Metadata(host) => write!(f, "metadata server {host}"),
            Source::KeyFile(path) => write!(f, "credentials file {}", path.display()),
        }
    }
}

/// Hands out a valid token for one source, fetching a new one only when needed.
pub(super) struct Tokens {
    source: Source,
    cache: TokenCache,
}

impl Tokens {
    pub fn new(source: Source, cache: TokenCache) -> Tokens {
        Tokens { source, cache }
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// A token from the shared cache, or fetched now.
    pub fn get(&self, deadline: Instant) -> Result<Secret, CloudError> {
        let key = self.source.cache_key();
        self.cache.get_or_fetch(&key, token_cache::MARGIN, || {
            let (value, expires_in) = match &self.source {
                Source::Metadata(host) => from_metadata(host, deadline)?,
                Source::KeyFile(path) => match CredentialsFile::load(path)? {
                    CredentialsFile::ServiceAccount(key) => from_key(&key, path, deadline)?,
                    CredentialsFile::AuthorizedUser(user) => {
                        from_refresh_token(&user, path, deadline)?
                    }
                },
            };
            Ok((Secret::new(value), expires_in))
        })
    }

    /// Forgets the cached token, e.g. after the API answered 401 (revoked or rotated).
    pub fn forget(&self) {
        self.cache.forget(&self.source.cache_key());
    }
}

/// The token endpoints' answer. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// The token endpoint's error body (`{"error":"invalid_grant","error_description":"…"}`).
#[derive(Deserialize, Default)]
struct OAuthError {
    error: Option<String>,
    error_description: Option<String>,
}

fn from_metadata(host: &str, deadline: Instant) -> Result<(String, Duration), CloudError> {
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
    let what = format!("metadata server {host}");
    let request = Request::get(&url).header("Metadata-Flavor", "Google");
    let body = fetch(&what, &Client::new(Service::Metadata), request, deadline)
    .map_err(|e| match e {
        Fetch::Unreachable(m) => CloudError::Auth(format!(
            "{m}; outside a GCE VM put a service-account key in credentials.json in the HA directory, set GOOGLE_APPLICATION_CREDENTIALS, or run gcloud auth application-default login"
        )),
        Fetch::Refused(status, _) => CloudError::Auth(format!(
            "{what} answered HTTP {status} for the default service account's token; does the VM have a service account with the compute scope?"
        )),
    })?;
    parse_answer(&body, &what)
}

fn from_key(
    key: &KeyFile,
    path: &Path,
    deadline: Instant,
) -> Result<(String, Duration), CloudError> {
    let assertion = key.assertion(SystemTime::now())?;
    let request = Request::new(Method::Post, &key.token_uri)
        .secret(assertion.as_str())
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion.as_str()),
        ]);
    let refused = format!("the key of {} from {}", key.client_email, path.display());
    grant(
        &key.token_uri,
        request,
        deadline,
        &[&assertion],
        &refused,
        "",
    )
}

/// The refresh-token grant of `authorized_user` credentials, as google-auth sends it (no scope:
/// the token carries what the user consented to, `cloud-platform` for gcloud's file).
fn from_refresh_token(
    user: &UserCredentials,
    path: &Path,
    deadline: Instant,
) -> Result<(String, Duration), CloudError> {
    let secrets = [user.client_secret.expose(), user.refresh_token.expose()];
    let request = Request::new(Method::Post, &user.token_uri)
        .secret(secrets[0])
        .secret(secrets[1])
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", user.client_id.as_str()),
            ("client_secret", secrets[0]),
            ("refresh_token", secrets[1]),
        ]);
    let refused = format!(
        "the authorized_user credentials of client {} from {}",
        user.client_id,
        path.display()
    );
    let fix = "; run gcloud auth application-default login again, or use a service-account key";
    grant(&user.token_uri, request, deadline, &secrets, &refused, fix)
}

/// One OAuth grant at `token_uri`: the token and its lifetime, or why the endpoint refused
/// `credential` (its own error code and description, then `fix`), with `secrets` masked.
fn grant(
    token_uri: &str,
    request: Request,
    deadline: Instant,
    secrets: &[&str],
    credential: &str,
    fix: &str,
) -> Result<(String, Duration), CloudError> {
    let what = format!("token endpoint {token_uri}");
    let body = fetch(&what, &Client::new(Service::Gcp), request, deadline)
        .map_err(|e| match e {
            Fetch::Unreachable(m) => CloudError::Auth(m),
            Fetch::Refused(status, body) => {
                let err: OAuthError = serde_json::from_str(&body).unwrap_or_default();
                CloudError::Auth(format!(
                    "{what} refused {credential} (HTTP {status}): {}{}{fix}",
                    err.error.as_deref().unwrap_or("no error code"),
                    err.error_description
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default(),
                ))
            }
        })
        .map_err(|e| e.masked(secrets))?;
    parse_answer(&body, &what)
}

fn parse_answer(body: &str, what: &str) -> Result<(String, Duration), CloudError> {
    let answer: TokenAnswer = serde_json::from_str(body)
        .map_err(|_| CloudError::Auth(format!("{what} answered without an access_token")))?;
    if answer.access_token.is_empty() {
        return Err(CloudError::Auth(format!(
            "{what} answered with an empty access_token"
        )));
    }
    Ok((
        answer.access_token,
        Duration::from_secs(answer.expires_in.unwrap_or(0)),
    ))
}

enum Fetch {
    /// Transport failure, or retries exhausted: a message.
    Unreachable(String),
    /// A non-retryable HTTP status and the body.
    Refused(u16, String),
}

/// Tries per token request: a token service that is down stays down for this event, and the
/// deadline is better spent reporting it.
const TOKEN_TRIES: u32 = 4;

/// The body of a 2xx answer to `request`, tried at most [`TOKEN_TRIES`] times.
fn fetch(
    what: &str,
    client: &Client,
    request: Request,
    deadline: Instant,
) -> Result<String, Fetch> {
    let reply = client
        .send(&request.tries(TOKEN_TRIES), deadline)
        .map_err(|e| {
            Fetch::Unreachable(e.unless_permanent(|e| format!("{what} unreachable: {e}")))
        })?;
    match reply.status {
        200..=299 => Ok(reply.body),
        status @ (429 | 500..=599) => {
            Err(Fetch::Unreachable(format!("{what} answered HTTP {status}")))
        }
        status => Err(Fetch::Refused(status, reply.body)),
    }
}

/// The fields of a credentials file this provider uses, of either type. No `Debug`: it holds
/// keys.
#[derive(Deserialize)]
struct FileJson {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
}

/// A credentials file, by its `type`.
enum CredentialsFile {
    /// `service_account` (or no `type`): a key that signs its own JWT.
    ServiceAccount(Box<KeyFile>),
    /// `authorized_user`: a user's refresh token and the OAuth client it was issued to.
    AuthorizedUser(UserCredentials),
}

/// `authorized_user` credentials. No `Debug`: they hold secrets.
struct UserCredentials {
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_uri: String,
}

/// A loaded service-account key.
struct KeyFile {
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    key: ring::signature::RsaKeyPair,
}

/// Where credentials send their grants when the file does not say (google-auth's default).
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

impl CredentialsFile {
    fn load(path: &Path) -> Result<CredentialsFile, CloudError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CloudError::Auth(format!("cannot read credentials file {shown}: {e}")))?;
        // serde's message could quote a value from the file, so only its position is reported.
        let json: FileJson = serde_json::from_str(&text).map_err(|e| {
            CloudError::Auth(format!(
                "{shown} is not a credentials file (JSON error at line {} column {}); download a JSON key from IAM, or run gcloud auth application-default login",
                e.line(),
                e.column()
            ))
        })?;
        match json.kind.as_deref() {
            None | Some("service_account") => KeyFile::from_json(json, path).map(|k| Self::ServiceAccount(Box::new(k))),
            Some("authorized_user") => {
                UserCredentials::from_json(json, path).map(Self::AuthorizedUser)
            }
            Some(kind) => Err(CloudError::Auth(format!(
                "{shown} holds credentials of type {kind:?}; csr-ha takes a service_account key or authorized_user credentials (gcloud auth application-default login)"
            ))),
        }
    }
}

impl UserCredentials {
    fn from_json(json: FileJson, path: &Path) -> Result<UserCredentials, CloudError> {
        let missing = |field: &str| {
            CloudError::Auth(format!(
                "{} (authorized_user) has no {field}; run gcloud auth application-default login again",
                path.display()
            ))
        };
        let field = |value: Option<String>, name: &str| {
            value.filter(|v| !v.is_empty()).ok_or_else(|| missing(name))
        };
        let token_uri = json
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        check_token_uri(&token_uri, path)?;
        Ok(UserCredentials {
            client_id: field(json.client_id, "client_id")?,
            client_secret: Secret::new(field(json.client_secret, "client_secret")?),
            refresh_token: Secret::new(field(json.refresh_token, "refresh_token")?),
            token_uri,
        })
    }
}

impl KeyFile {
    fn from_json(json: FileJson, path: &Path) -> Result<KeyFile, CloudError> {
        let shown = path.display();
        let missing = |field: &str| {
            CloudError::Auth(format!(
                "{shown} has no {field}; is it a service-account key?"
            ))
        };
        let client_email = json.client_email.ok_or_else(|| missing("client_email"))?;
        let pem = json.private_key.ok_or_else(|| missing("private_key"))?;
        let token_uri = json
            .token_uri
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_string());
        check_token_uri(&token_uri, path)?;
        let key = private_key(&pem).map_err(|why| {
            CloudError::Auth(format!("private_key in {shown} is not usable: {why}"))
        })?;
        Ok(KeyFile {
            client_email,
            key_id: json.private_key_id,
            token_uri,
            key,
        })
    }

    /// The signed JWT that the token endpoint exchanges for an access token.
    fn assertion(&self, now: SystemTime) -> Result<String, CloudError> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": iat,
            "exp": iat + 3600,
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                CloudError::Auth(format!(
                    "cannot sign the token request for {}",
                    self.client_email
                ))
            })?;
        Ok(format!("{signing_input}.{}", b64.encode(signature)))
    }
}

/// The JWT carries no secret, but it grants a token: it goes over TLS, or plain HTTP only to
/// this machine (test fakes, local proxies).
fn check_token_uri(uri: &str, path: &Path) -> Result<(), CloudError> {
    let host_of = |rest: &str| rest.split(['/', '?']).next().unwrap_or("").to_string();
    let loopback = uri
        .strip_prefix("http://")
        .map(host_of)
        .is_some_and(|host| {
            let name = match host.find(']') {
                Some(end) if host.starts_with('[') => &host[..=end],
                _ => host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h),
            };
            matches!(name, "127.0.0.1" | "localhost" | "[::1]")
        });
    if uri.starts_with("https://") || loopback {
        Ok(())
    } else {
        Err(CloudError::Auth(format!(
            "token_uri {uri:?} in {} is not an https URL",
            path.display()
        )))
    }
}

/// Decodes a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what IAM issues) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`). The error never quotes the key.
fn private_key(pem: &str) -> Result<ring::signature::RsaKeyPair, String> {
    let (label, der) = pem_der(pem).ok_or("not a PEM block")?;
    match label.as_str() {
        "PRIVATE KEY" => ring::signature::RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| format!("RSA key rejected ({e})")),
        "RSA PRIVATE KEY" => ring::signature::RsaKeyPair::from_der(&der)
            .map_err(|e| format!("RSA key rejected ({e})")),
        other => Err(format!("a PEM {other:?} block, expected PRIVATE KEY")),
    }
}

/// The label and bytes of the first PEM block.
fn pem_der(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let (label, rest) = rest.split_once("-----")?;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let body: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some((label.to_string(), der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_uri_must_be_https_or_loopback() {
        let p = Path::new("k.json");
        assert!(check_token_uri("https://oauth2.example/token", p).is_ok());
        assert!(check_token_uri("http://127.0.0.1:8080/token", p).is_ok());
        assert!(check_token_uri("http://[::1]:9/token", p).is_ok());
        assert!(check_token_uri("http://[::1]/token", p).is_ok());
        assert!(check_token_uri("http://oauth2.example/token", p).is_err());
        assert!(check_token_uri("http://127.0.0.1.evil.example/token", p).is_err());
    }

    #[test]
    fn authorized_user_credentials_go_to_googles_endpoint_unless_the_file_names_one() {
        let p = Path::new("application_default_credentials.json");
        let user = |token_uri: Option<&str>| {
            let mut json = serde_json::json!({
                "type": "authorized_user",
                "client_id": "c.apps.example",
                "client_secret": "s3cret",
                "refresh_token": "1//r3fresh",
            });
            if let Some(uri) = token_uri {
                json["token_uri"] = uri.into();
            }
            let json: FileJson = serde_json::from_value(json).expect("fields");
            UserCredentials::from_json(json, p)
        };
        let found = user(None).map(|u| u.token_uri).map_err(|e| e.to_string());
        assert_eq!(found.as_deref(), Ok(DEFAULT_TOKEN_URI));
        let found = user(Some("http://127.0.0.1:8/token")).map(|u| u.token_uri);
        assert_eq!(
            found.map_err(|e| e.to_string()).as_deref(),
            Ok("http://127.0.0.1:8/token")
        );
        let refused = user(Some("http://oauth2.example/token"))
            .err()
            .map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("is not an https URL")));
    }

    #[test]
    fn pem_blocks_are_decoded_and_garbage_rejected() {
        let pem = "junk\n-----BEGIN PRIVATE KEY-----\nAAEC\nAw==\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            pem_der(pem),
            Some(("PRIVATE KEY".to_string(), vec![0, 1, 2, 3]))
        );
        assert_eq!(
            pem_der("-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----"),
            None
        );
        assert!(
            private_key("-----BEGIN PRIVATE KEY-----\nAAEC\n-----END PRIVATE KEY-----").is_err()
        );
    }
}
