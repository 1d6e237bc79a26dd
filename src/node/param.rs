//! The node parameter table: which parameters each provider has and needs, their flags and
//! key names, and the validation that turns a flag's text into a typed [`Value`] once, where it
//! enters the process.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{mask, Cidr, InvalidValue};

/// What needs a node parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the node works without it.
    Optional,
    /// Events: a node without it is stored, with a `199` warning, and skipped by events.
    Events,
    /// `create_node` itself, as the original's argparse required it (and events too).
    Create,
}

words! {
    /// Which route-table provider a node (or the whole install) uses.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    pub enum Provider ("cloud", "one of aws, azure, gcp, file") {
        Aws = "aws",
        Azure = "azure",
        Gcp = "gcp",
        File = "file",
    }
}

impl Provider {
    /// The node parameter table for this provider: every parameter in `show_node` order, with
    /// what needs it. `-h`, the command-line flags, validation and `show_node` all come from it.
    pub fn spec(self) -> &'static [(Param, Need)] {
        use Need::*;
        use Param::*;
        match self {
            Provider::Aws => &[
                (RouteTableId, Create),
                (Region, Create),
                (EniId, Create),
                (Route, Optional),
                (Mode, Optional),
            ],
            Provider::Azure => &[
                (Cloud, Create),
                (SubscriptionId, Events),
                (ResourceGroup, Events),
                (RouteTableName, Create),
                (NextHop, Create),
                (Route, Optional),
                (AppId, Optional),
                (TenantId, Optional),
                (AppKey, Optional),
                (Mode, Optional),
            ],
            Provider::Gcp => &[
                (Cloud, Create),
                (Project, Create),
                (Vpc, Create),
                (RouteName, Create),
                (PeerRouteName, Create),
                (NextHopIp, Create),
                (HopPriority, Create),
                (Route, Create),
                (Mode, Optional),
            ],
            Provider::File => &[
                (RouteTable, Create),
                (NextHop, Create),
                (Route, Optional),
                (Mode, Optional),
            ],
        }
    }

    /// Every parameter this provider knows, in the order `show_node` prints them.
    pub fn params(self) -> Vec<Param> {
        self.spec().iter().map(|(p, _)| *p).collect()
    }

    /// Parameters a node of this provider must have before an event can act on it.
    pub fn required(self) -> Vec<Param> {
        self.with_need(|need| need != Need::Optional)
    }

    /// Flags `create_node` refuses to run without, as the original's argparse did (exit 2).
    /// Azure's `-s`/`-g` are not among them: the original stored the node and warned (`199`).
    pub fn create_required(self) -> Vec<Param> {
        self.with_need(|need| need == Need::Create)
    }

    fn with_need(self, wanted: impl Fn(Need) -> bool) -> Vec<Param> {
        self.spec()
            .iter()
            .filter(|(_, need)| wanted(*need))
            .map(|(p, _)| *p)
            .collect()
    }
}

words! {
    /// Redundancy mode: only `primary` nodes act on `revert`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum Mode ("-m", "primary or secondary") {
        Primary = "primary",
        Secondary = "secondary",
    }
}

words! {
    /// An Azure node's cloud (`-p`), which decides the ARM, login and IMDS endpoints: the
    /// public cloud, US Government, or China (21Vianet).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum AzureCloud ("-p", "azure, azusgov or azchina") {
        Public = "azure", UsGov = "azusgov", China = "azchina",
    }
}

/// A parameter's value, parsed once when it enters the process (flags, a frame, `node_file`,
/// the handler's work): its canonical text, which `show_node` prints and `node_file` stores,
/// and, for the parameters that have a type, that type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub(super) text: String,
    pub(super) typed: Typed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Typed {
    Text,
    Route(Cidr),
    Mode(Mode),
    AzureCloud(AzureCloud),
    Priority(u16),
    Address(IpAddr),
}

impl Value {
    fn typed(text: String, typed: Typed) -> Value {
        Value { text, typed }
    }

    pub(super) fn text(text: &str) -> Value {
        Value::typed(text.to_string(), Typed::Text)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The same value shown as set but not readable (secrets, for `show_node`).
    pub fn masked(&self) -> Value {
        Value::typed(mask(&self.text), self.typed)
    }
}

/// One named node parameter. The key is the original package's, the flag the original CLI's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Param {
    // aws
    RouteTableId,
    Region,
    EniId,
    // shared
    Route,
    Mode,
    Cloud,
    // azure
    SubscriptionId,
    ResourceGroup,
    RouteTableName,
    NextHop,
    AppId,
    TenantId,
    AppKey,
    // gcp
    Project,
    Vpc,
    RouteName,
    PeerRouteName,
    NextHopIp,
    HopPriority,
    // file
    RouteTable,
}

/// Every parameter, for lookups by key.
pub const ALL_PARAMS: [Param; 20] = [
    Param::RouteTableId,
    Param::Region,
    Param::EniId,
    Param::Route,
    Param::Mode,
    Param::Cloud,
    Param::SubscriptionId,
    Param::ResourceGroup,
    Param::RouteTableName,
    Param::NextHop,
    Param::AppId,
    Param::TenantId,
    Param::AppKey,
    Param::Project,
    Param::Vpc,
    Param::RouteName,
    Param::PeerRouteName,
    Param::NextHopIp,
    Param::HopPriority,
    Param::RouteTable,
];

impl Param {
    /// The key under which `node_file` and `show_node` name this parameter.
    pub fn key(self) -> &'static str {
        use Param::*;
        match self {
            RouteTableId => "routeTableId",
            Region => "region",
            EniId => "eniId",
            Route => "route",
            Mode => "mode",
            Cloud => "cloud",
            SubscriptionId => "subscriptionId",
            ResourceGroup => "resourceGroup",
            RouteTableName => "routeTableName",
            NextHop => "nextHop",
            AppId => "appId",
            TenantId => "tenantId",
            AppKey => "appKey",
            Project => "project",
            Vpc => "vpc",
            RouteName => "routeName",
            PeerRouteName => "peerRouteName",
            NextHopIp => "nextHopIp",
            HopPriority => "hopPriority",
            RouteTable => "routeTable",
        }
    }

    pub fn from_key(key: &str) -> Option<Param> {
        ALL_PARAMS.iter().copied().find(|p| p.key() == key)
    }

    /// The command-line flag that sets this parameter.
    pub fn flag(self) -> &'static str {
        use Param::*;
        match self {
            RouteTableId | RouteTableName | RouteTable => "-t",
            Region => "-rg",
            EniId | NextHop | NextHopIp => "-n",
            Route => "-r",
            Mode => "-m",
            Cloud => "-p",
            SubscriptionId => "-s",
            ResourceGroup | Project => "-g",
            AppId | RouteName => "-a",
            TenantId => "-d",
            AppKey => "-k",
            Vpc => "-v",
            PeerRouteName => "-b",
            HopPriority => "-o",
        }
    }

    /// Secrets are masked by `show_node` and never written to logs or event files.
    pub fn is_secret(self) -> bool {
        self == Param::AppKey
    }

    /// What the flag accepts, for `-h` and for error messages.
    pub fn accepted(self) -> &'static str {
        use Param::*;
        match self {
            RouteTableId => "a route table id rtb-<8 or more hex digits>",
            Region => "an AWS region such as us-east-1",
            EniId => "a network interface id eni-<8 or more hex digits>",
            Route => "an IPv4 or IPv6 CIDR with prefix and no host bits set, e.g. 10.0.0.0/16",
            Mode => "primary or secondary",
            Cloud => "azure, azusgov or azchina (Azure) or gcp (GCP)",
            SubscriptionId | TenantId | AppId => "an Azure id (letters, digits and -, at most 64)",
            ResourceGroup => "an Azure resource group name (letters, digits, -_.(), at most 90)",
            RouteTableName => "an Azure route table name (letters, digits, -_., at most 80)",
            NextHop | NextHopIp => "an IPv4 or IPv6 address",
            AppKey => "the Azure application key (printable, no spaces)",
            Project => "a GCP project id (6-30 of a-z, 0-9, -; starting with a letter)",
            Vpc | RouteName | PeerRouteName => "a GCP name [a-z]([-a-z0-9]{0,61}[a-z0-9])?",
            HopPriority => "an integer in range <0-65535>",
            RouteTable => "a table name (1-64 of letters, digits, -_.)",
        }
    }

    /// Checks `value` for this parameter and returns it parsed, in canonical form.
    pub fn validate(self, value: &str, provider: Provider) -> Result<Value, InvalidValue> {
        use Param::*;
        let bad = || InvalidValue::new(self.flag(), value, self.accepted());
        let ok = |good: bool| {
            if good {
                Ok(Value::text(value))
            } else {
                Err(bad())
            }
        };
        match self {
            RouteTableId => ok(prefixed_hex(value, "rtb-")),
            EniId => ok(prefixed_hex(value, "eni-")),
            Region => ok(is_region(value)),
            Route => value
                .parse::<Cidr>()
                .map(|c| Value::typed(c.to_string(), Typed::Route(c)))
                .map_err(|_| bad()),
            Mode => value
                .parse::<self::Mode>()
                .map(|m| Value::typed(m.to_string(), Typed::Mode(m)))
                .map_err(|_| bad()),
            Cloud => cloud(value, provider),
            SubscriptionId | TenantId | AppId => ok(bounded(value, 64, |c| {
                c.is_ascii_alphanumeric() || c == '-'
            })),
            ResourceGroup => ok(
                bounded(value, 90, |c| c.is_alphanumeric() || "-_.()".contains(c))
                    && !value.ends_with('.'),
            ),
            RouteTableName => ok(bounded(value, 80, |c| {
                c.is_ascii_alphanumeric() || "-_.".contains(c)
            })),
            NextHop | NextHopIp => value
                .parse::<IpAddr>()
                .map(|ip| Value::typed(ip.to_string(), Typed::Address(ip)))
                .map_err(|_| bad()),
            AppKey => ok(bounded(value, 512, |c| c.is_ascii_graphic())),
            Project => ok(is_gcp_project(value)),
            Vpc | RouteName | PeerRouteName => ok(is_gcp_name(value)),
            HopPriority => value
                .parse::<u16>()
                .map(|p| Value::typed(p.to_string(), Typed::Priority(p)))
                .map_err(|_| bad()),
            RouteTable => ok(bounded(value, 64, |c| {
                c.is_ascii_alphanumeric() || "-_.".contains(c)
            }) && !value.starts_with('.')),
        }
    }
}

/// `-p`: Azure's cloud names for an Azure node, `gcp` for a GCP node.
fn cloud(value: &str, provider: Provider) -> Result<Value, InvalidValue> {
    match provider {
        Provider::Azure => value
            .parse::<AzureCloud>()
            .map(|c| Value::typed(c.to_string(), Typed::AzureCloud(c))),
        Provider::Gcp if value == "gcp" => Ok(Value::text(value)),
        Provider::Gcp => Err(InvalidValue::new("-p", value, "gcp")),
        _ => Err(InvalidValue::new("-p", value, Param::Cloud.accepted())),
    }
}

fn bounded(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    !value.is_empty() && value.chars().count() <= max && value.chars().all(allowed)
}

fn prefixed_hex(value: &str, prefix: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() >= 8
            && hex.len() <= 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn is_region(value: &str) -> bool {
    bounded(value, 32, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) && value.contains('-')
        && value.ends_with(|c: char| c.is_ascii_digit())
}

/// GCP resource names: `[a-z]([-a-z0-9]{0,61}[a-z0-9])?`, matched in full.
pub fn is_gcp_name(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[b.len() - 1] != b'-'
}

fn is_gcp_project(value: &str) -> bool {
    (6..=30).contains(&value.len()) && is_gcp_name(value)
}
