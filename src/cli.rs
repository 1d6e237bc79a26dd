//! Command-line parsing shared by every binary, on clap's builder API.
//!
//! The original CLI's flags are argparse's: single-dash, some of two letters (`-rg`, `-mi`),
//! `-i5` and `-i=5` accepted, the last of a repeated flag winning. clap's short flags are one
//! character, so two-letter flags become long ones (`-rg` → `--rg`, `-rg=x` → `--rg=x`) in argv
//! before clap parses. Node parameter flags come from the node parameter table
//! ([`Provider::params`]) and their value parsers are [`Param::validate`], so a rejected value
//! prints the project's own `400: -n "10.0.0.300" is not valid: expected …` and exits 2. Each
//! command keeps its hand-written `-h` text, which lists every flag with its accepted form.

use std::fmt;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches};

use crate::client::{self, ClientError};
use crate::node::{InvalidValue, NodeIndex, Param, Provider, Value};
use crate::paths::HaDir;
use crate::protocol::{Command, NodeParams, Response, Status, Target};

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

/// A flag as the original spelled it (`-i`, `-rg`, `--json`), and whether it takes a value.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    pub spelling: &'static str,
    pub takes_value: bool,
}

impl Flag {
    pub const fn value(spelling: &'static str) -> Flag {
        Flag {
            spelling,
            takes_value: true,
        }
    }
    pub const fn switch(spelling: &'static str) -> Flag {
        Flag {
            spelling,
            takes_value: false,
        }
    }

    /// clap's id: the spelling without its dashes.
    fn id(self) -> &'static str {
        self.spelling.trim_start_matches('-')
    }

    /// Single-dash flags of more than one letter, which clap can only take as long flags.
    fn is_two_letter(self) -> bool {
        !self.spelling.starts_with("--") && self.id().len() > 1
    }

    fn arg(self) -> Arg {
        let id = self.id();
        let arg = Arg::new(id);
        let arg = match id.chars().next() {
            Some(c) if id.len() == 1 && !self.spelling.starts_with("--") => arg.short(c),
            _ => arg.long(id),
        };
        if self.takes_value {
            arg.action(ArgAction::Set).num_args(1).value_name(id)
        } else {
            arg.action(ArgAction::SetTrue)
        }
    }
}

/// `-rg` → `--rg`, `-rg=x` → `--rg=x` for the two-letter flags among `flags`.
fn long_form(argv: &[String], flags: &[Flag]) -> Vec<String> {
    argv.iter()
        .map(|token| {
            let two_letter = flags.iter().filter(|f| f.is_two_letter()).find(|f| {
                token == f.spelling
                    || token
                        .strip_prefix(f.spelling)
                        .is_some_and(|rest| rest.starts_with('='))
            });
            match two_letter {
                Some(_) => format!("-{token}"),
                None => token.clone(),
            }
        })
        .collect()
}

/// The spelling the user typed for clap's rendering of an argument (`--rg <rg>` → `-rg`).
fn spelling_of(rendered: &str, flags: &[Flag]) -> String {
    let word = rendered.split([' ', '=']).next().unwrap_or(rendered);
    flags
        .iter()
        .find(|f| {
            let id = f.id();
            word.trim_start_matches('-') == id
        })
        .map_or_else(|| word.to_string(), |f| f.spelling.to_string())
}

/// clap's refusal as the project's: the value's own validation error where there is one.
fn refusal(e: &clap::Error, command: &str, flags: &[Flag]) -> CliError {
    if let Some(invalid) =
        std::error::Error::source(e).and_then(|s| s.downcast_ref::<InvalidValue>())
    {
        return CliError::Invalid(invalid.clone());
    }
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    let arg = context(ContextKind::InvalidArg).unwrap_or_default();
    CliError::Usage(match e.kind() {
        ErrorKind::UnknownArgument => {
            format!("{command}: unknown argument {arg:?}; see {command} -h for the accepted flags")
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals | ErrorKind::WrongNumberOfValues => {
            format!(
                "{} needs a value; see {command} -h",
                spelling_of(&arg, flags)
            )
        }
        _ => format!("{command}: {}; see {command} -h", e.kind()),
    })
}

/// Parses `argv` (without the program name) for a command taking `flags` plus `-h` and
/// `--version`, with argparse's habits: the last of a repeated flag wins.
fn matches(
    argv: &[String],
    command: &'static str,
    args: Vec<(Flag, Arg)>,
) -> Result<ArgMatches, CliError> {
    let flags: Vec<Flag> = args.iter().map(|(f, _)| *f).collect();
    let clap_command = clap::Command::new(command)
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args_override_self(true)
        .arg(
            Arg::new("help")
                .short('h')
                .long("help")
                .action(ArgAction::SetTrue),
        )
        .arg(
            Arg::new("version")
                .long("version")
                .action(ArgAction::SetTrue),
        )
        .args(args.into_iter().map(|(_, a)| a));
    let found = clap_command
        .try_get_matches_from(long_form(argv, &flags))
        .map_err(|e| refusal(&e, command, &flags))?;
    if found.get_flag("help") {
        return Err(CliError::Help);
    }
    if found.get_flag("version") {
        return Err(CliError::Version);
    }
    Ok(found)
}

/// The provider's parameter flags, as clap arguments whose value parser is [`Param::validate`].
fn param_args(provider: Provider, with_values: bool) -> Vec<(Flag, Arg)> {
    let mut args = plain(&[INDEX]);
    args.extend(provider.params().iter().map(|&param| {
        let flag = Flag {
            spelling: param.flag(),
            takes_value: with_values,
        };
        let arg = flag.arg();
        let arg = if with_values {
            arg.value_parser(move |value: &str| param.validate(value, provider))
        } else {
            arg
        };
        (flag, arg)
    }));
    args
}

/// Flags whose values are taken as given (checked by the command).
fn plain(flags: &[Flag]) -> Vec<(Flag, Arg)> {
    flags.iter().map(|f| (*f, f.arg())).collect()
}

/// Flags as parsed, read by their original spelling.
#[derive(Debug)]
pub struct Args {
    found: ArgMatches,
}

impl Args {
    /// Parses a command that takes exactly `flags` (and `-h`, `--version`).
    pub fn parse(argv: &[String], command: &'static str, flags: &[Flag]) -> Result<Args, CliError> {
        Ok(Args {
            found: matches(argv, command, plain(flags))?,
        })
    }

    /// The value of a flag (by spelling: `-i`, `-mi`), if given.
    pub fn get(&self, spelling: &str) -> Option<&str> {
        let id = spelling.trim_start_matches('-');
        self.found
            .try_get_one::<String>(id)
            .ok()
            .flatten()
            .map(String::as_str)
    }

    /// Whether a switch (by spelling) was given.
    pub fn has(&self, spelling: &str) -> bool {
        let id = spelling.trim_start_matches('-');
        self.found.try_get_one::<bool>(id).ok().flatten() == Some(&true)
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

    /// `-i N` and the provider's parameter flags, as `create_node` and `set_params` take them;
    /// every value validated (and put in canonical form) by its value parser.
    pub fn node_params(
        argv: &[String],
        command: &'static str,
        provider: Provider,
    ) -> Result<NodeParams, CliError> {
        let found = matches(argv, command, param_args(provider, true))?;
        let args = Args { found };
        let params = provider
            .params()
            .iter()
            .filter_map(|&p| {
                let value = args
                    .found
                    .get_one::<Value>(p.flag().trim_start_matches('-'))?;
                Some((p, value.as_str().to_string()))
            })
            .collect();
        Ok(NodeParams {
            index: args.index()?,
            provider,
            params,
        })
    }

    /// `-i N` and the provider's parameter flags as switches (`clear_params -i 3 -r -m`).
    pub fn param_switches(
        argv: &[String],
        command: &'static str,
        provider: Provider,
    ) -> Result<(NodeIndex, Vec<Param>), CliError> {
        let found = matches(argv, command, param_args(provider, false))?;
        let args = Args { found };
        let params = provider
            .params()
            .iter()
            .copied()
            .filter(|p| args.has(p.flag()))
            .collect();
        Ok((args.index()?, params))
    }
}

/// `-i <value>`, taken by every node command.
pub const INDEX: Flag = Flag::value("-i");

/// The configured provider, or a usage error naming where it came from.
pub fn configured_provider(dir: &HaDir) -> Result<Provider, CliError> {
    dir.provider().map_err(CliError::Usage)
}

/// `-h` of a command taking `-i` and the provider's parameter flags (with values, or as
/// switches naming parameters to clear).
pub fn node_help(command: &str, provider: Provider, about: &str, with_values: bool) -> String {
    format!(
        "usage: {command} -i <index> <flags>   (cloud: {provider})\n{about}\n  \
         -i <value>     index           an integer in range <1-1023> (required)\n{}\
         The cloud comes from CSR_HA_CLOUD, else $CSR_HA_DIR/cloud, else file.\n",
        param_help(provider, with_values)
    )
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
            exit_of(&response)
        }
        Err(e) => {
            crate::say!(Status::Failed, "{e}");
            ExitCode::from(exit_of_client_error(&e))
        }
    }
}

/// 0 for a reply that succeeded, else [`EXIT_FAILED`].
pub fn exit_of(response: &Response) -> ExitCode {
    if response.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}

/// [`EXIT_NO_SERVER`] when no server answered, else [`EXIT_FAILED`].
pub fn exit_of_client_error(error: &ClientError) -> u8 {
    match error {
        ClientError::NotRunning { .. }
        | ClientError::NoReply { .. }
        | ClientError::FifoFull { .. } => EXIT_NO_SERVER,
        _ => EXIT_FAILED,
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
            crate::say!(Status::Failed, "{e}");
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
        Ok(command) => send_and_print(&dir, command, Response::render),
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
