//! Command-line parsing shared by the client commands.
//!
//! The original CLI has two-letter short flags (`-rg`, `-mi`) that no argument library parses
//! as such, and users' scripts depend on them; and a rejected value must print `400: ` with the
//! flag, the value and the accepted form. So the parsing is done here, by hand, from one table.

use std::fmt;
use std::process::ExitCode;

use crate::client::{self, ClientError};
use crate::node::{InvalidValue, NodeIndex, Param, Provider};
use crate::paths::HaDir;
use crate::protocol::{Command, Response, Target};

/// Exit code for input rejected before anything was sent.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a failure the server reported.
pub const EXIT_FAILED: u8 = 1;
/// Exit code when no server answered.
pub const EXIT_NO_SERVER: u8 = 3;

/// Input the client refuses; printed as `400: <message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    Invalid(InvalidValue),
    Usage(String),
    /// `-h`: print the help text and exit 0.
    Help,
    /// `--version`: print the version and exit 0.
    Version,
}

impl From<InvalidValue> for CliError {
    fn from(e: InvalidValue) -> CliError {
        CliError::Invalid(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Invalid(e) => write!(f, "{e}"),
            CliError::Usage(m) => f.write_str(m),
            CliError::Help => f.write_str("help requested"),
            CliError::Version => f.write_str("version requested"),
        }
    }
}

/// Flags as given: `(flag, value)` in order, each flag at most once.
#[derive(Debug, Default)]
pub struct Args {
    pub pairs: Vec<(String, Option<String>)>,
}

impl Args {
    /// Splits argv. `takes_value(flag)` says whether a flag takes a value (`Some(true)`), is a
    /// switch (`Some(false)`) or is unknown (`None`).
    pub fn parse(
        argv: &[String],
        command: &str,
        takes_value: impl Fn(&str) -> Option<bool>,
    ) -> Result<Args, CliError> {
        let mut args = Args::default();
        let mut iter = argv.iter();
        while let Some(flag) = iter.next() {
            if flag == "-h" || flag == "--help" {
                return Err(CliError::Help);
            }
            if flag == "--version" {
                return Err(CliError::Version);
            }
            let value = match takes_value(flag) {
                Some(true) => match iter.next() {
                    Some(v) => Some(v.clone()),
                    None => {
                        return Err(CliError::Usage(format!(
                            "{flag} needs a value; see {command} -h"
                        )))
                    }
                },
                Some(false) => None,
                None => {
                    return Err(CliError::Usage(format!(
                    "{command}: unknown argument {flag:?}; see {command} -h for the accepted flags"
                )))
                }
            };
            if args.get(flag).is_some() || args.has(flag) {
                return Err(CliError::Usage(format!("{flag} given twice")));
            }
            args.pairs.push((flag.clone(), value));
        }
        Ok(args)
    }

    pub fn get(&self, flag: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn has(&self, flag: &str) -> bool {
        self.pairs.iter().any(|(f, _)| f == flag)
    }

    /// `-i N`, required.
    pub fn index(&self) -> Result<NodeIndex, CliError> {
        match self.get("-i") {
            Some(v) => Ok(v.parse()?),
            None => Err(CliError::Invalid(InvalidValue::new(
                "-i",
                "",
                "an integer in range <1-1023> (required)",
            ))),
        }
    }

    /// `-i N|all`, required.
    pub fn target(&self) -> Result<Target, CliError> {
        match self.get("-i") {
            Some("all") => Ok(Target::All),
            Some(v) => v.parse().map(Target::One).map_err(|_| {
                CliError::Invalid(InvalidValue::new(
                    "-i",
                    v,
                    "an integer in range <1-1023> or all",
                ))
            }),
            None => Err(CliError::Invalid(InvalidValue::new(
                "-i",
                "",
                "an integer in range <1-1023> or all (required)",
            ))),
        }
    }

    /// `-i N` and the provider's parameter flags, as `create_node` and `set_params` take them.
    pub fn node_params(
        argv: &[String],
        command: &str,
        provider: Provider,
    ) -> Result<(NodeIndex, Vec<(Param, String)>), CliError> {
        let args = Args::parse(argv, command, |f| {
            (f == "-i" || provider.param_for_flag(f).is_some()).then_some(true)
        })?;
        Ok((args.index()?, args.params(provider)?))
    }

    /// The provider parameters given, each validated for `provider`.
    pub fn params(&self, provider: Provider) -> Result<Vec<(Param, String)>, CliError> {
        let mut out = Vec::new();
        for (flag, value) in &self.pairs {
            if let Some(param) = provider.param_for_flag(flag) {
                out.push((
                    param,
                    param.validate(value.as_deref().unwrap_or_default(), provider)?,
                ));
            }
        }
        Ok(out)
    }
}

/// The configured provider, or a usage error naming where it came from.
pub fn configured_provider(dir: &HaDir) -> Result<Provider, CliError> {
    dir.provider().map_err(CliError::Usage)
}

/// Help lines for the provider's parameter flags: flag, key, accepted form.
pub fn param_help(provider: Provider, with_values: bool) -> String {
    let mut out = String::new();
    for param in provider.params() {
        let flag = if with_values {
            format!("{} <value>", param.flag())
        } else {
            param.flag().to_string()
        };
        let accepted = match (param, provider) {
            (Param::Cloud, Provider::Gcp) => "gcp",
            (Param::Cloud, _) => "azure, azusgov or azchina",
            _ => param.accepted(),
        };
        out.push_str(&format!("  {flag:14} {:15} {accepted}\n", param.key()));
    }
    out
}

/// Sends `command`, prints the reply with `render`, and maps the outcome to an exit code.
pub fn send_and_print(
    dir: &HaDir,
    command: Command,
    render: impl Fn(&Response) -> String,
) -> ExitCode {
    let wait = client::wait_for(&command);
    match client::request(dir, command, wait) {
        Ok(response) => {
            crate::out!("{}", ensure_newline(render(&response)));
            if response.succeeded() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
        Err(e) => {
            crate::outln!("400: {e}");
            match e {
                ClientError::NotRunning { .. } | ClientError::NoReply { .. } => {
                    ExitCode::from(EXIT_NO_SERVER)
                }
                _ => ExitCode::from(EXIT_FAILED),
            }
        }
    }
}

/// Prints a rejected command line (or the help) and returns the exit code.
pub fn reject(error: CliError, help: &str) -> ExitCode {
    match error {
        CliError::Help => {
            crate::out!("{help}");
            ExitCode::SUCCESS
        }
        CliError::Version => {
            crate::outln!("{}", version());
            ExitCode::SUCCESS
        }
        e => {
            crate::outln!("400: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// argv without the program name.
pub fn argv() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// `main` of a command whose flags depend on the configured cloud (create, set, clear).
pub fn main_for_provider(
    parse: fn(&[String], Provider) -> Result<Command, CliError>,
    help: fn(Provider) -> String,
) -> ExitCode {
    let dir = HaDir::from_env();
    let provider = match configured_provider(&dir) {
        Ok(p) => p,
        Err(e) => return reject(e, ""),
    };
    match parse(&argv(), provider) {
        Ok(command) => send_and_print(&dir, command, |r| r.text.clone()),
        Err(e) => reject(e, &help(provider)),
    }
}

/// `<program> (csr-ha <version>)`, for `--version` and debug bundles.
pub fn version() -> String {
    let program = std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    format!("{program} (csr-ha {})", env!("CARGO_PKG_VERSION"))
}
