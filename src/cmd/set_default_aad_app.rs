//! `set_default_aad_app -p azure|azusgov|azchina -a <app id> -d <tenant id> -k <app key>`: makes
//! an Azure AD app the default for every Azure node without its own `-a -d -k` (before the VM's
//! managed identity), as the original's `set_default_aad_app.py` did.
//!
//! It acts locally, with no server: it asks Azure AD for a token with the app (the login
//! endpoint of `-p`, or `CSR_HA_AZURE_LOGIN_ENDPOINT`), and only if Azure AD gives one writes
//! `~/cloud/authMgr/aad_app_file` (the original's file and format, mode 0600). Each event
//! handler reads that file, so the next event uses the app; nothing needs a restart. An app
//! Azure AD refuses is a `400:` and the file is left as it was (the original wrote it first).
//!
//! ```text
//! $ set_default_aad_app -p azure -a 1111… -d 2222… -k <key>
//! 200: Default AAD application set: app 1111… in tenant 2222… (cloud azure), kept in /home/guestshell/cloud/authMgr/aad_app_file; Azure nodes without -a sign in with it from their next event
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{self, Args, CliError, Flag};
use crate::cloud::azure::{self, AzureConfig, DefaultApp};
use crate::cloud::secret::Secret;
use crate::node::{AzureCloud, InvalidValue, Param, Provider};

pub const HELP: &str =
    "usage: set_default_aad_app -p <cloud> -a <app id> -d <tenant id> -k <app key>\n\
Makes an Azure AD app the default for Azure nodes without their own -a -d -k (before the VM's\n\
managed identity). Azure AD must give the app a token first; then it is kept in\n\
~/cloud/authMgr/aad_app_file (mode 0600), read by the next event. Needs no server.\n  \
-p <value>     cloud           azure, azusgov or azchina (required)\n  \
-a <value>     appId           an Azure id (letters, digits and -, at most 64) (required)\n  \
-d <value>     tenantId        an Azure id (letters, digits and -, at most 64) (required)\n  \
-k <value>     appKey          the Azure application key (printable, no spaces) (required)\n";

/// How long Azure AD has to answer.
const DEADLINE: Duration = Duration::from_secs(20);

const FLAGS: [(Param, Flag); 4] = [
    (Param::Cloud, Flag::value("-p")),
    (Param::AppId, Flag::value("-a")),
    (Param::TenantId, Flag::value("-d")),
    (Param::AppKey, Flag::value("-k")),
];

/// The app the flags name, to be kept in `path`. Every flag is required, as the original's.
pub fn parse(argv: &[String], path: std::path::PathBuf) -> Result<DefaultApp, CliError> {
    let flags: Vec<Flag> = FLAGS.iter().map(|(_, f)| *f).collect();
    let args = Args::parse(argv, "set_default_aad_app", &flags)?;
    let missing: Vec<String> = FLAGS
        .iter()
        .filter(|(_, f)| args.get(f.spelling).is_none())
        .map(|(p, f)| format!("{} ({})", f.spelling, p.key()))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "set_default_aad_app: the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    let value = |param: Param| -> Result<String, CliError> {
        let given = args.get(param.flag()).unwrap_or_default();
        let value = param.validate(given, Provider::Azure)?;
        Ok(value.as_str().to_string())
    };
    let cloud = value(Param::Cloud)?;
    let cloud = cloud
        .parse::<AzureCloud>()
        .map_err(|_| InvalidValue::new("-p", &cloud, AzureCloud::ACCEPTED))?;
    Ok(DefaultApp {
        cloud,
        app_id: value(Param::AppId)?,
        tenant_id: value(Param::TenantId)?,
        app_key: Secret::new(value(Param::AppKey)?),
        path,
    })
}

/// Proves the app with Azure AD at `config`'s login endpoint, then keeps it. `Err` is the
/// `400:` line's text; the file is then unchanged.
pub fn apply(app: &DefaultApp, config: &AzureConfig) -> Result<String, String> {
    azure::verify_app(config, app, Instant::now() + DEADLINE).map_err(|e| {
        format!(
            "Azure AD gave no token to {}: {e}; the default AAD application is unchanged ({})",
            app.describe(),
            app.path.display()
        )
    })?;
    app.save().map_err(|e| {
        format!(
            "cannot write {}: {e}; the default AAD application is unchanged",
            app.path.display()
        )
    })?;
    log::info!("default Azure AD app set: {}", app.describe());
    Ok(format!(
        "Default AAD application set: {}, kept in {}; Azure nodes without -a sign in with it from their next event",
        app.describe(),
        app.path.display()
    ))
}

pub fn main() -> ExitCode {
    let path = match super::run::default_app_path() {
        Ok(path) => path,
        Err(exit) => return exit,
    };
    let app = match parse(&cli::argv(), path) {
        Ok(app) => app,
        Err(e) => return super::run::reject(e, HELP),
    };
    super::run::print_local(apply(&app, &AzureConfig::endpoints_from_env(app.cloud)))
}
