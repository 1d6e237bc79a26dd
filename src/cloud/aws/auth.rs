//! AWS credentials, looked for where the AWS tools look, in their order: each place is a
//! [`CredentialProvider`], and [`CredentialSources::providers`] is the list in that order:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the profile's `role_arn` (config file `[profile x]`/`[default]`, or credentials file
//!    `[x]`), assumed through STS `AssumeRole` with the credentials of its `source_profile`
//!    (chains allowed, loops refused) or `credential_source` (`Ec2InstanceMetadata`,
//!    `Environment`) — botocore's `AssumeRoleProvider`;
//! 3. the profile's keys in the shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//!    `~/.aws/credentials`);
//! 4. the profile's keys in the config file (`AWS_CONFIG_FILE`, else `~/.aws/config`);
//! 5. the instance's IAM role through IMDSv2:
//!
//! The profile is `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`. A key botocore
//! would act on and csr-ha does not support (`credential_process`, `sso_*`,
//! `web_identity_token_file`, another `credential_source`) is an error naming it, never
//! ignored: ignoring it would make the router act as someone else.
//!
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

use super::client::QueryApi;
use super::sigv4::Credentials;

/// Where credentials are looked for; [`CredentialSources::from_env`] fills it the AWS way, tests
/// fill it by hand so that no test touches the process environment.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// Keys from the environment, if both `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set.
    pub static_keys: Option<Credentials>,
    /// The shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`);
    /// `None` when no home directory is known.
    pub shared_file: Option<PathBuf>,
    /// The config file (`AWS_CONFIG_FILE`, else `~/.aws/config`); `None` when no home
    /// directory is known.
    pub config_file: Option<PathBuf>,
    /// `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`; `None` means `default`, and a missing
    /// `default` profile is no error.
    pub profile: Option<String>,
    /// STS for `role_arn` profiles (`AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`); `None`
    /// means `https://sts.<region>.amazonaws.com`.
    pub sts_endpoint: Option<String>,
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
    /// the token, as botocore, and `IMDS_TRIES` (2) for the reads.
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
const IMDS_DEFAULT: &str = "http://169.254.169.254";
/// Tokens are asked for the longest TTL IMDS grants.
const IMDS_TOKEN_TTL: Duration = Duration::from_secs(21_600);
/// How long the token `PUT` waits for its reply, as botocore (`AWS_METADATA_SERVICE_TIMEOUT`).
const IMDS_TOKEN_TIMEOUT: Duration = Duration::from_secs(1);
/// The metadata service's address when `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6`.
const IMDS_DEFAULT_IPV6: &str = "http://[fd00:ec2::254]";
/// How many times one metadata request is tried (a machine without a metadata service must not
/// spend the whole event deadline finding out).
const IMDS_TRIES: u32 = 2;

/// How [`CredentialSources::resolve`] names credentials of the instance's role.
const ROLE_SOURCE: &str = "instance role";

/// What [`CredentialSources::resolve`] found.
pub(super) struct Resolved {
    pub credentials: Credentials,
    /// Where they came from, for the log: `environment`, `<file> [profile]`,
    /// `role arn:… (profile [p])`, `instance role via <endpoint>`.
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
    /// Nothing here, and nothing worth saying (a profile without `role_arn`).
    Skip,
}

/// What a provider may use: the event's HTTP client (STS), the node's region, its deadline.
pub(super) struct Context<'a> {
    pub http: &'a Client,
    pub region: &'a str,
    pub deadline: Instant,
}

/// One place AWS credentials may come from. [`CredentialSources::providers`] lists them in
/// botocore's order and [`CredentialSources::resolve`] asks each in turn: a new source is one
/// more provider in that list, and nothing else changes.
pub(super) trait CredentialProvider {
    /// Where the credentials it finds come from, for the log.
    fn name(&self) -> String;
    /// Its credentials, [`Lookup::Absent`] when it has none (the next one is asked), or an
    /// error when it is configured but broken (a named profile missing, a key without its
    /// secret, a role STS refuses): then no other is asked, as botocore stops there too.
    fn lookup(&self, context: &Context) -> Result<Lookup, CloudError>;
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

    fn lookup(&self, _context: &Context) -> Result<Lookup, CloudError> {
        Ok(match self.0 {
            Some(keys) => Lookup::Found(keys.clone()),
            None => Lookup::Absent("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set".into()),
        })
    }
}

/// `aws_access_key_id` and `aws_secret_access_key` of the profile in one of the two files.
struct ProfileKeys<'a> {
    profiles: &'a Profiles,
    file: Which,
}

impl CredentialProvider for ProfileKeys<'_> {
    fn name(&self) -> String {
        self.profiles.where_(self.file, &self.profiles.name)
    }

    fn lookup(&self, _context: &Context) -> Result<Lookup, CloudError> {
        let profiles = self.profiles;
        let file = profiles.file(self.file);
        let Some(path) = &file.path else {
            return Ok(match self.file {
                Which::Credentials => {
                    Lookup::Absent("no shared credentials file (HOME not set)".into())
                }
                Which::Config => Lookup::Skip,
            });
        };
        let name = &profiles.name;
        let Some(section) = profiles.section(self.file, name) else {
            return Ok(Lookup::Absent(format!(
                "no profile [{name}] in {}",
                path.display()
            )));
        };
        Ok(match keys_in(section, &self.name())? {
            Some(keys) => Lookup::Found(keys),
            None => Lookup::Absent(format!("no keys in {}", self.name())),
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

    fn lookup(&self, context: &Context) -> Result<Lookup, CloudError> {
        let Some(imds) = self.imds else {
            return Ok(Lookup::Absent(
                "instance metadata disabled (AWS_EC2_METADATA_DISABLED)".into(),
            ));
        };
        Ok(match from_imds(imds, self.cache, context.deadline) {
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
    /// The providers in botocore's order: the environment, the profile's `role_arn` (STS
    /// `AssumeRole`), the profile's keys in the credentials file, then in the config file, the
    /// instance role. `profiles` is the two files as read for this lookup.
    pub(super) fn providers<'a>(
        &'a self,
        profiles: &'a Profiles,
    ) -> Vec<Box<dyn CredentialProvider + 'a>> {
        vec![
            Box::new(Environment(self.static_keys.as_ref())),
            Box::new(AssumeRole {
                sources: self,
                profiles,
            }),
            Box::new(ProfileKeys {
                profiles,
                file: Which::Credentials,
            }),
            Box::new(ProfileKeys {
                profiles,
                file: Which::Config,
            }),
            Box::new(InstanceRole {
                imds: self.imds.as_ref(),
                cache: &self.cache,
            }),
        ]
    }

    /// The profile botocore would use: `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else
    /// `default`.
    fn profile_name(&self) -> &str {
        self.profile.as_deref().unwrap_or("default")
    }

    /// Drops every cached credential, so the next [`CredentialSources::resolve`] fetches anew.
    pub(super) fn forget(&self) {
        let profiles = Profiles::read(self);
        for provider in self.providers(&profiles) {
            provider.forget();
        }
    }

    /// The first provider's credentials, and where they came from.
    pub(super) fn resolve(&self, context: &Context) -> Result<Resolved, CloudError> {
        let profiles = Profiles::read(self);
        let mut tried = Vec::new();
        for provider in self.providers(&profiles) {
            match provider.lookup(context)? {
                Lookup::Found(credentials) => {
                    return Ok(Resolved {
                        credentials,
                        source: provider.name(),
                        cached: provider.caches(),
                    })
                }
                Lookup::Absent(why) => tried.push(why),
                Lookup::Skip => {}
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
        let in_home = |file: &str| var("HOME").map(|home| Path::new(&home).join(".aws").join(file));
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
        let sts = http::endpoint(&["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"], "");
        CredentialSources {
            static_keys,
            shared_file: var("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| in_home("credentials")),
            config_file: var("AWS_CONFIG_FILE")
                .map(PathBuf::from)
                .or_else(|| in_home("config")),
            profile: var("AWS_PROFILE").or_else(|| var("AWS_DEFAULT_PROFILE")),
            sts_endpoint: (!sts.is_empty()).then_some(sts),
            imds,
            cache,
        }
    }
}

/// Which of botocore's two files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Which {
    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`: sections `[name]`.
    Credentials,
    /// `AWS_CONFIG_FILE`, else `~/.aws/config`: sections `[profile name]` and `[default]`.
    Config,
}

type Section = BTreeMap<String, String>;

/// One of the two files as read: its sections, or why it could not be read. No `Debug`: the
/// sections hold secrets.
#[derive(Default)]
struct IniFile {
    path: Option<PathBuf>,
    sections: BTreeMap<String, Section>,
    unreadable: Option<String>,
}

impl IniFile {
    /// A file that does not exist has no sections; one that cannot be read says why.
    fn read(path: Option<&Path>) -> IniFile {
        let Some(path) = path else {
            return IniFile::default();
        };
        let (sections, unreadable) = match std::fs::read_to_string(path) {
            Ok(text) => (parse_ini(&text), None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeMap::new(), None),
            Err(e) => (
                BTreeMap::new(),
                Some(format!(
                    "cannot read {}: {e}: make it readable by the user ha_server runs as, or \
                     point AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE elsewhere",
                    path.display()
                )),
            ),
        };
        IniFile {
            path: Some(path.to_path_buf()),
            sections,
            unreadable,
        }
    }

    fn shown(&self) -> String {
        self.path
            .as_ref()
            .map_or("(none)".into(), |p| p.display().to_string())
    }
}

/// botocore's two files, read once per lookup, and the profile in use.
pub(super) struct Profiles {
    /// `AWS_PROFILE`, else `AWS_DEFAULT_PROFILE`, else `default`.
    name: String,
    /// The profile was named by a variable: it must exist.
    named: bool,
    credentials: IniFile,
    config: IniFile,
}

/// Profile keys csr-ha does not act on (and every `sso_*` key): botocore would use them, so
/// ignoring them could make the router act as someone else. A profile holding one is refused,
/// the key named.
const UNSUPPORTED: &[&str] = &["web_identity_token_file", "credential_process"];

impl Profiles {
    pub(super) fn read(sources: &CredentialSources) -> Profiles {
        Profiles {
            name: sources.profile_name().to_string(),
            named: sources.profile.is_some(),
            credentials: IniFile::read(sources.shared_file.as_deref()),
            config: IniFile::read(sources.config_file.as_deref()),
        }
    }

    fn file(&self, which: Which) -> &IniFile {
        match which {
            Which::Credentials => &self.credentials,
            Which::Config => &self.config,
        }
    }

    /// Profile `name`'s section in one file: `[name]` in the credentials file; `[profile name]`
    /// in the config file, where the default profile is `[default]`.
    fn section(&self, which: Which, name: &str) -> Option<&Section> {
        let sections = &self.file(which).sections;
        let prefixed = sections.get(&format!("profile {name}"));
        match which {
            Which::Credentials => sections.get(name).or(prefixed),
            Which::Config if name == "default" => sections.get(name).or(prefixed),
            Which::Config => prefixed,
        }
    }

    /// `[profile x] in ~/.aws/config`, for messages.
    fn where_(&self, which: Which, name: &str) -> String {
        let section = match which {
            Which::Config if name != "default" => format!("[profile {name}]"),
            _ => format!("[{name}]"),
        };
        format!("{section} in {}", self.file(which).shown())
    }

    /// Profile `name` as botocore merges it: the config file's keys, overridden by the
    /// credentials file's; and for each key, where it was found. `None` if in neither.
    fn merged(&self, name: &str) -> Option<BTreeMap<String, (String, Which)>> {
        let mut merged = BTreeMap::new();
        let mut found = false;
        for which in [Which::Config, Which::Credentials] {
            if let Some(section) = self.section(which, name) {
                found = true;
                for (k, v) in section {
                    merged.insert(k.clone(), (v.clone(), which));
                }
            }
        }
        found.then_some(merged)
    }

    /// The files can be read, a named profile exists, and profile `name` holds no key csr-ha
    /// does not support; else the `400:` that says which file or key and what to do.
    fn usable(&self, name: &str) -> Result<(), CloudError> {
        for file in [&self.credentials, &self.config] {
            if let Some(why) = &file.unreadable {
                return Err(CloudError::Auth(why.clone()));
            }
        }
        let Some(profile) = self.merged(name) else {
            if self.named && name == self.name {
                return Err(CloudError::Auth(format!(
                    "profile [{name}] (AWS_PROFILE) not found in {} or {}: add it, or set \
                     AWS_PROFILE to a profile that exists",
                    self.credentials.shown(),
                    self.config.shown()
                )));
            }
            return Ok(());
        };
        let unsupported = profile
            .iter()
            .find(|(k, _)| UNSUPPORTED.contains(&k.as_str()) || k.starts_with("sso_"));
        match unsupported {
            Some((key, (_, which))) => Err(CloudError::Auth(format!(
                "{key} in {} is not supported by csr-ha (it would not act as that identity): \
                 give the profile aws_access_key_id/aws_secret_access_key or role_arn with \
                 source_profile or credential_source, or use another profile (AWS_PROFILE)",
                self.where_(*which, name)
            ))),
            None => Ok(()),
        }
    }
}

/// The keys of a profile section: both, none, or the error naming what is missing.
fn keys_in(section: &Section, place: &str) -> Result<Option<Credentials>, CloudError> {
    let get = |k: &str| section.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            Ok(Some(Credentials::new(id, secret, get("aws_session_token"))))
        }
        (None, None) => Ok(None),
        _ => Err(CloudError::Auth(format!(
            "profile {place} lacks aws_access_key_id or aws_secret_access_key: add the missing \
             key"
        ))),
    }
}

/// `[section]` headers and `key = value` lines; `#` and `;` start comments.
fn parse_ini(text: &str) -> BTreeMap<String, Section> {
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
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

/// The STS API version every `AssumeRole` names.
const STS_VERSION: &str = "2011-06-15";

/// The profile's `role_arn`, assumed through STS `AssumeRole` with the credentials its
/// `source_profile` or `credential_source` names (as botocore's `AssumeRoleProvider`); the
/// role's credentials are kept in the shared cache until [`MARGIN`] before their `Expiration`.
///
/// ```text
/// POST https://sts.<region>.amazonaws.com/        (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL)
/// Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::222222222222:role/x
///   &RoleSessionName=csr-ha-1795000000[&ExternalId=…][&DurationSeconds=3600]
///   -> <AssumeRoleResult><Credentials><AccessKeyId>…<SecretAccessKey>…<SessionToken>…
///      <Expiration>2026-12-08T04:00:00Z</Expiration></Credentials></AssumeRoleResult>
/// ```
struct AssumeRole<'a> {
    sources: &'a CredentialSources,
    profiles: &'a Profiles,
}

/// A role to assume, as the profiles describe it: read locally, before any request.
#[derive(Debug)]
struct RolePlan {
    /// Where its `role_arn` is: `[profile x] in ~/.aws/config`.
    place: String,
    role_arn: String,
    /// `role_session_name`; `None`: `csr-ha-<unix time>`, as botocore names its sessions.
    session_name: Option<String>,
    external_id: Option<String>,
    duration_seconds: Option<u32>,
    /// The profile's `region`, where STS is asked (else the node's `-rg`).
    region: Option<String>,
    source: RoleSource,
}

/// Whose credentials assume the role.
#[derive(Debug)]
enum RoleSource {
    /// `source_profile` with keys (the profile itself, if it names itself and has keys).
    Keys(Credentials),
    /// `credential_source = Environment`.
    Environment,
    /// `credential_source = Ec2InstanceMetadata`.
    InstanceMetadata,
    /// `source_profile` with a `role_arn` of its own: a chain.
    Role(Box<RolePlan>),
}

impl CredentialProvider for AssumeRole<'_> {
    fn name(&self) -> String {
        match self.plan(&self.profiles.name, &mut Vec::new()) {
            Ok(Some(plan)) => format!("role {} ({})", plan.role_arn, plan.place),
            _ => "role_arn of the profile".into(),
        }
    }

    fn lookup(&self, context: &Context) -> Result<Lookup, CloudError> {
        match self.plan(&self.profiles.name, &mut Vec::new())? {
            Some(plan) => Ok(Lookup::Found(self.assume(&plan, context)?)),
            None => Ok(Lookup::Skip),
        }
    }

    fn caches(&self) -> bool {
        true
    }

    /// The assumed credentials of every role in the chain.
    fn forget(&self) {
        let mut next = self
            .plan(&self.profiles.name, &mut Vec::new())
            .ok()
            .flatten();
        while let Some(plan) = next {
            self.sources.cache.forget(&self.key(&plan));
            next = match plan.source {
                RoleSource::Role(inner) => Some(*inner),
                _ => None,
            };
        }
    }
}

impl AssumeRole<'_> {
    /// The role profile `name` names, with its source; `None` if it has no `role_arn`.
    /// `chain` holds the profiles that led here, to refuse a loop.
    fn plan(&self, name: &str, chain: &mut Vec<String>) -> Result<Option<RolePlan>, CloudError> {
        self.profiles.usable(name)?;
        let Some(profile) = self.profiles.merged(name) else {
            return Ok(None);
        };
        let get = |k: &str| {
            profile
                .get(k)
                .map(|(v, _)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let (Some(role_arn), Some((_, which))) = (get("role_arn"), profile.get("role_arn")) else {
            return Ok(None);
        };
        let place = self.profiles.where_(*which, name);
        chain.push(name.to_string());
        let source = match (get("source_profile"), get("credential_source")) {
            (Some(_), Some(_)) => {
                return Err(CloudError::Auth(format!(
                    "{place} has role_arn with both source_profile and credential_source: \
                     keep one"
                )))
            }
            (None, None) => {
                return Err(CloudError::Auth(format!(
                    "{place} has role_arn but neither source_profile nor credential_source: \
                     add one (credential_source = Ec2InstanceMetadata for the instance role)"
                )))
            }
            (Some(source), None) => self.with_source(name, &source, &place, chain)?,
            (None, Some(named)) => credential_source(&named, &place).map_err(CloudError::Auth)?,
        };
        RolePlan::new(role_arn, place, &get, source).map(Some)
    }

    /// What `source_profile = source` of profile `name` gives: its keys, or its own role.
    fn with_source(
        &self,
        name: &str,
        source: &str,
        place: &str,
        chain: &mut Vec<String>,
    ) -> Result<RoleSource, CloudError> {
        let keys_of = |profile: &str| -> Result<Option<Credentials>, CloudError> {
            let merged = self.profiles.merged(profile).unwrap_or_default();
            let section: Section = merged.into_iter().map(|(k, (v, _))| (k, v)).collect();
            keys_in(&section, &format!("[{profile}]"))
        };
        if source == name {
            // botocore: a profile that is its own source uses its own keys.
            return keys_of(name)?.map(RoleSource::Keys).ok_or_else(|| {
                CloudError::Auth(format!(
                    "{place}: source_profile = {name} is the profile itself, which has no \
                     aws_access_key_id/aws_secret_access_key"
                ))
            });
        }
        if chain.iter().any(|p| p == source) {
            return Err(CloudError::Auth(format!(
                "{place}: source_profile makes a loop ({} -> {source}): end the chain with a \
                 profile that has keys or a credential_source",
                chain.join(" -> ")
            )));
        }
        if self.profiles.merged(source).is_none() {
            return Err(CloudError::Auth(format!(
                "{place}: source_profile = {source}, but there is no profile [{source}] in {} \
                 or {}",
                self.profiles.credentials.shown(),
                self.profiles.config.shown()
            )));
        }
        if let Some(inner) = self.plan(source, chain)? {
            return Ok(RoleSource::Role(Box::new(inner)));
        }
        keys_of(source)?.map(RoleSource::Keys).ok_or_else(|| {
            CloudError::Auth(format!(
                "{place}: source_profile = {source}, whose profile has neither keys nor a \
                 role_arn"
            ))
        })
    }

    /// The role's credentials: from the shared cache, else from STS with its source's.
    fn assume(&self, plan: &RolePlan, context: &Context) -> Result<Credentials, CloudError> {
        let source = match &plan.source {
            RoleSource::Keys(keys) => keys.clone(),
            RoleSource::Environment => self.sources.static_keys.clone().ok_or_else(|| {
                CloudError::Auth(format!(
                    "{}: credential_source = Environment, but AWS_ACCESS_KEY_ID/\
                     AWS_SECRET_ACCESS_KEY are not set",
                    plan.place
                ))
            })?,
            RoleSource::InstanceMetadata => self.instance_role(plan, context)?,
            RoleSource::Role(inner) => self.assume(inner, context)?,
        };
        let region = plan.region.as_deref().unwrap_or(context.region);
        let endpoint = self.sts_endpoint(region);
        let fetch = || assume_role(plan, &source, &endpoint, region, context);
        let value = self
            .sources
            .cache
            .get_or_fetch(&self.key(plan), MARGIN, fetch)?;
        decode(&value).ok_or_else(|| {
            self.sources.cache.forget(&self.key(plan));
            CloudError::Auth(format!(
                "the cached credentials of role {} were unreadable: forgotten",
                plan.role_arn
            ))
        })
    }

    fn instance_role(&self, plan: &RolePlan, context: &Context) -> Result<Credentials, CloudError> {
        let place = &plan.place;
        let imds = self.sources.imds.as_ref().ok_or_else(|| {
            CloudError::Auth(format!(
                "{place}: credential_source = Ec2InstanceMetadata, but instance metadata is \
                 disabled (AWS_EC2_METADATA_DISABLED)"
            ))
        })?;
        from_imds(imds, &self.sources.cache, context.deadline).map_err(|e| {
            CloudError::Auth(format!(
                "{place}: credential_source = Ec2InstanceMetadata: instance role: {e}"
            ))
        })
    }

    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else STS in `region`.
    fn sts_endpoint(&self, region: &str) -> String {
        match &self.sources.sts_endpoint {
            Some(endpoint) => endpoint.clone(),
            None if region.starts_with("cn-") => format!("https://sts.{region}.amazonaws.com.cn"),
            None => format!("https://sts.{region}.amazonaws.com"),
        }
    }

    /// The cache entry of `plan`'s credentials: the role, how it is asked for, and who asks
    /// (keys hashed, never kept), so a changed source never reuses the old role credentials.
    fn key(&self, plan: &RolePlan) -> CacheKey {
        let mut parts = Vec::new();
        let mut next = Some(plan);
        while let Some(plan) = next {
            parts.push(plan.role_arn.clone());
            parts.push(plan.session_name.clone().unwrap_or_default());
            parts.push(plan.external_id.clone().unwrap_or_default());
            parts.push(plan.duration_seconds.unwrap_or(0).to_string());
            parts.push(plan.region.clone().unwrap_or_default());
            next = None;
            match &plan.source {
                RoleSource::Keys(keys) => {
                    parts.push(keys.access_key_id.clone());
                    parts.push(keys.secret_access_key.expose().to_string());
                }
                RoleSource::Environment => {
                    let keys = self.sources.static_keys.as_ref();
                    parts.push(keys.map(|k| k.access_key_id.clone()).unwrap_or_default());
                }
                RoleSource::InstanceMetadata => {
                    let imds = self.sources.imds.as_ref();
                    parts.push(imds.map(|i| i.endpoint.clone()).unwrap_or_default());
                }
                RoleSource::Role(inner) => next = Some(inner),
            }
        }
        parts.push(self.sources.sts_endpoint.clone().unwrap_or_default());
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        CacheKey::new(ASSUMED_ROLE_KIND, &parts)
    }
}

/// The cache kind of assumed-role credentials (what `ha_api -c status` lists).
const ASSUMED_ROLE_KIND: &str = "aws-assumed-role";

impl RolePlan {
    fn new(
        role_arn: String,
        place: String,
        get: &dyn Fn(&str) -> Option<String>,
        source: RoleSource,
    ) -> Result<RolePlan, CloudError> {
        let duration_seconds = match get("duration_seconds") {
            None => None,
            Some(text) => Some(text.trim().parse::<u32>().map_err(|_| {
                CloudError::Auth(format!(
                    "duration_seconds = {text} in {place} is not a number of seconds (900 to \
                     43200): correct it"
                ))
            })?),
        };
        Ok(RolePlan {
            role_arn,
            session_name: get("role_session_name"),
            external_id: get("external_id"),
            duration_seconds,
            region: get("region"),
            source,
            place,
        })
    }
}

/// `credential_source` as botocore reads it; only the sources a router can have.
fn credential_source(named: &str, place: &str) -> Result<RoleSource, String> {
    match named {
        "Environment" => Ok(RoleSource::Environment),
        "Ec2InstanceMetadata" => Ok(RoleSource::InstanceMetadata),
        other => Err(format!(
            "credential_source = {other} in {place} is not supported by csr-ha: use \
             Ec2InstanceMetadata (the instance role) or Environment, or source_profile"
        )),
    }
}

/// STS `AssumeRole` of `plan` with `source`'s credentials: the role's credentials (as the
/// cache keeps them) and how long they are valid.
fn assume_role(
    plan: &RolePlan,
    source: &Credentials,
    endpoint: &str,
    region: &str,
    context: &Context,
) -> Result<(Secret, Duration), CloudError> {
    let api = QueryApi::new(endpoint, region, "sts", STS_VERSION)?;
    let now = SystemTime::now();
    let default_name = format!("csr-ha-{}", crate::timestamp::unix_secs(now));
    let duration = plan.duration_seconds.map(|d| d.to_string());
    let mut params = vec![
        ("RoleArn", plan.role_arn.as_str()),
        (
            "RoleSessionName",
            plan.session_name.as_deref().unwrap_or(&default_name),
        ),
    ];
    params.extend(plan.external_id.as_deref().map(|id| ("ExternalId", id)));
    params.extend(duration.as_deref().map(|d| ("DurationSeconds", d)));
    let role = &plan.role_arn;
    let body = api
        .call(
            context.http,
            source,
            "AssumeRole",
            &params,
            context.deadline,
        )
        .map_err(|e| match e {
            CloudError::Api { ref code, .. } if code == "AccessDenied" => {
                CloudError::Auth(format!(
                    "STS refused to let {} assume role {role} ({}): {e}; the role's trust policy \
                 must allow sts:AssumeRole for them",
                    source.access_key_id, plan.place
                ))
            }
            CloudError::Api { .. } => CloudError::Auth(format!(
                "STS AssumeRole of role {role} ({}): {e}",
                plan.place
            )),
            other => other,
        })?;
    let (keys, expires) = parse_assume_role(&body).map_err(|why| {
        CloudError::Transport(format!(
            "STS at {endpoint} answered AssumeRole of {role} with {why}"
        ))
    })?;
    let lifetime = expires.duration_since(now).unwrap_or_default();
    log::info!(
        "assumed role {role} ({}), key id {}",
        plan.place,
        keys.access_key_id
    );
    Ok((encode(&keys), lifetime))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResponse {
    assume_role_result: AssumeRoleResult,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleResult {
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
}

/// The credentials in an `AssumeRoleResponse` and when they expire. The error never quotes
/// the body (it holds the secret).
fn parse_assume_role(body: &str) -> Result<(Credentials, SystemTime), String> {
    let response: AssumeRoleResponse = quick_xml::de::from_str(body)
        .map_err(|_| "XML that is not an AssumeRoleResponse with Credentials".to_string())?;
    let c = response.assume_role_result.credentials;
    let expires = crate::timestamp::parse_utc(&c.expiration)
        .ok_or_else(|| format!("an unreadable Expiration {:?}", c.expiration))?;
    let keys = Credentials::new(
        &c.access_key_id,
        &c.secret_access_key,
        Some(&c.session_token),
    );
    Ok((keys, expires))
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
const HOP_LIMIT_FIX: &str = "aws ec2 modify-instance-metadata-options --instance-id <id> \
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

    /// Sources reading only `credentials` and `config` in `dir` (no metadata service), with
    /// `profile` named as `AWS_PROFILE` would.
    fn files(dir: &Path, profile: Option<&str>) -> CredentialSources {
        CredentialSources {
            shared_file: Some(dir.join("credentials")),
            config_file: Some(dir.join("config")),
            profile: profile.map(str::to_string),
            ..Default::default()
        }
    }

    /// What `resolve` finds with `sources`: (key id, where from), or the error's text.
    fn found(sources: &CredentialSources) -> Result<(String, String), String> {
        let http = Client::new(Service::Aws);
        let context = Context {
            http: &http,
            region: "us-east-1",
            deadline: Instant::now() + Duration::from_secs(5),
        };
        sources
            .resolve(&context)
            .map(|r| (r.credentials.access_key_id, r.source))
            .map_err(|e| e.to_string())
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    #[test]
    fn shared_file_profiles() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(
            dir.path(),
            "credentials",
            "# comment\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n\
             [ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=s2\naws_session_token = t2\n[broken]\naws_access_key_id=x\n",
        );
        let key = |profile| found(&files(dir.path(), profile)).map(|(id, _)| id);
        assert_eq!(key(None), Ok("AKIADEFAULT".into()));
        assert_eq!(key(Some("ops")), Ok("AKIAOPS".into()));
        let err = key(Some("nothere")).expect_err("a named profile must exist");
        assert!(
            err.contains("profile [nothere] (AWS_PROFILE) not found in"),
            "{err}"
        );
        let err = key(Some("broken")).expect_err("half a profile");
        assert!(
            err.contains("lacks aws_access_key_id or aws_secret_access_key"),
            "{err}"
        );
        let empty = tempfile::tempdir().expect("temp dir");
        let err = found(&files(empty.path(), None)).expect_err("nothing anywhere");
        assert!(err.contains("no profile [default] in"), "{err}");
    }

    #[test]
    fn the_config_file_is_read_as_botocore_reads_it_and_after_the_credentials_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(
            dir.path(),
            "config",
            "[default]\naws_access_key_id = AKIACONFIGDEFAULT\naws_secret_access_key = c1\n\
             [profile cfg]\nregion = eu-west-1\naws_access_key_id = AKIACONFIGCFG\naws_secret_access_key = c2\n\
             [bare]\naws_access_key_id = AKIABARE\naws_secret_access_key = c3\n",
        );
        let (id, from) = found(&files(dir.path(), None)).expect("config [default]");
        assert_eq!(id, "AKIACONFIGDEFAULT");
        assert!(
            from.starts_with("[default] in ") && from.ends_with("config"),
            "{from}"
        );
        let (id, from) = found(&files(dir.path(), Some("cfg"))).expect("[profile cfg]");
        assert_eq!(id, "AKIACONFIGCFG");
        assert!(from.starts_with("[profile cfg] in "), "{from}");
        // In the config file a profile's section is [profile x]: [bare] is none.
        let err = found(&files(dir.path(), Some("bare"))).expect_err("no [profile bare]");
        assert!(
            err.contains("profile [bare] (AWS_PROFILE) not found"),
            "{err}"
        );
        // The credentials file comes first; the environment before both.
        write(
            dir.path(),
            "credentials",
            "[default]\naws_access_key_id = AKIACREDENTIALS\naws_secret_access_key = k\n",
        );
        assert_eq!(
            found(&files(dir.path(), None)).map(|(id, _)| id),
            Ok("AKIACREDENTIALS".into())
        );
        let mut sources = files(dir.path(), None);
        sources.static_keys = Some(Credentials::new("AKIAENVIRONMENT", "e", None));
        assert_eq!(
            found(&sources),
            Ok(("AKIAENVIRONMENT".into(), "environment".into()))
        );
    }

    #[test]
    fn keys_csr_ha_does_not_support_are_refused_by_name() {
        for (key, value) in [
            ("credential_process", "/usr/bin/get-keys"),
            ("sso_start_url", "https://example.awsapps.com/start"),
            ("sso_session", "corp"),
            ("web_identity_token_file", "/var/run/token"),
        ] {
            let dir = tempfile::tempdir().expect("temp dir");
            write(
                dir.path(),
                "config",
                &format!("[profile ha]\n{key} = {value}\naws_access_key_id = A\naws_secret_access_key = s\n"),
            );
            let err = found(&files(dir.path(), Some("ha"))).expect_err(key);
            assert!(
                err.contains(&format!("{key} in [profile ha] in "))
                    && err.contains("is not supported by csr-ha"),
                "{err}"
            );
            assert!(!err.contains(value), "{err}");
        }
    }

    /// The role `profile` names, planned from the files in `dir`, or the error's text.
    fn plan(dir: &Path, profile: &str) -> Result<Option<RolePlan>, String> {
        let sources = files(dir, Some(profile));
        let profiles = Profiles::read(&sources);
        let provider = AssumeRole {
            sources: &sources,
            profiles: &profiles,
        };
        provider
            .plan(profile, &mut Vec::new())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn role_profiles_name_their_source_and_chains_end() {
        let dir = tempfile::tempdir().expect("temp dir");
        write(
            dir.path(),
            "config",
            "[profile net]\nrole_arn = arn:aws:iam::222222222222:role/net\nsource_profile = hub\n\
             external_id = ext-1\nrole_session_name = router-a\nduration_seconds = 1800\nregion = eu-west-1\n\
             [profile hub]\nrole_arn = arn:aws:iam::111111111111:role/hub\ncredential_source = Ec2InstanceMetadata\n\
             [profile env]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\n\
             [profile ecs]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = EcsContainer\n\
             [profile both]\nrole_arn = arn:aws:iam::1:role/e\ncredential_source = Environment\nsource_profile = keys\n\
             [profile neither]\nrole_arn = arn:aws:iam::1:role/e\n\
             [profile loop-a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = loop-b\n\
             [profile loop-b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = loop-a\n\
             [profile self]\nrole_arn = arn:aws:iam::1:role/s\nsource_profile = self\n\
             [profile long]\nrole_arn = arn:aws:iam::1:role/l\nsource_profile = keys\nduration_seconds = an hour\n\
             [profile plain]\nregion = us-east-1\n",
        );
        write(
            dir.path(),
            "credentials",
            "[keys]\naws_access_key_id = AKIAKEYS\naws_secret_access_key = k\n\
             [self]\naws_access_key_id = AKIASELF\naws_secret_access_key = k\n",
        );
        let net = plan(dir.path(), "net").expect("plans").expect("a role");
        assert_eq!(net.role_arn, "arn:aws:iam::222222222222:role/net");
        assert_eq!(
            (
                net.external_id.as_deref(),
                net.session_name.as_deref(),
                net.duration_seconds,
                net.region.as_deref()
            ),
            (
                Some("ext-1"),
                Some("router-a"),
                Some(1800),
                Some("eu-west-1")
            )
        );
        let RoleSource::Role(hub) = &net.source else {
            panic!("net's source is hub's role: {net:?}")
        };
        assert!(
            matches!(hub.source, RoleSource::InstanceMetadata),
            "{hub:?}"
        );
        let env = plan(dir.path(), "env").expect("plans").expect("a role");
        assert!(matches!(env.source, RoleSource::Environment));
        let own = plan(dir.path(), "self").expect("plans").expect("a role");
        assert!(matches!(&own.source, RoleSource::Keys(k) if k.access_key_id == "AKIASELF"));
        assert!(matches!(plan(dir.path(), "plain"), Ok(None)));
        for (profile, says) in [
            (
                "ecs",
                "credential_source = EcsContainer in [profile ecs] in ",
            ),
            ("both", "both source_profile and credential_source"),
            ("neither", "neither source_profile nor credential_source"),
            (
                "loop-a",
                "source_profile makes a loop (loop-a -> loop-b -> loop-a)",
            ),
            ("long", "duration_seconds = an hour in [profile long] in "),
        ] {
            let err = plan(dir.path(), profile).expect_err(profile);
            assert!(err.contains(says), "{profile}: {err}");
        }
    }

    #[test]
    fn assume_role_answers_parse_and_never_show_their_secret() {
        let body = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
                    <AssumedRoleUser><Arn>arn:aws:sts::222222222222:assumed-role/net/router-a</Arn></AssumedRoleUser>\
                    <Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>\
                    <SessionToken>assumed-token</SessionToken><Expiration>2999-01-01T00:00:00.123Z</Expiration>\
                    </Credentials></AssumeRoleResult></AssumeRoleResponse>";
        let (keys, expires) = parse_assume_role(body).expect("parses");
        assert_eq!(keys.access_key_id, "ASIAASSUMED");
        assert_eq!(keys.session_token, Some(Secret::new("assumed-token")));
        assert!(expires > SystemTime::now());
        let err = parse_assume_role(
            &body
                .replace("<Expiration>", "<X>")
                .replace("</Expiration>", "</X>"),
        )
        .expect_err("no Expiration");
        assert!(!err.contains("assumed-secret"), "{err}");
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
