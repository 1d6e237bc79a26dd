//! A redundancy node: its index, the cloud provider it lives in, and its parameters.
//!
//! Parameters are kept under the original Python package's key names (`routeTableId`, `eniId`,
//! `nextHop`, ...) so that `show_node` reads like it always did and old `node_file`s import
//! cleanly. Every value is validated once, when it enters the process ([`Param::validate`]), and
//! stored in canonical form; providers then read typed values through the accessors below.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Highest node index the original package accepted.
pub const MAX_INDEX: u16 = 1023;

/// Index of a redundancy node, always in `1..=1023`.
///
/// Deserialising checks the range too, so a frame or file cannot smuggle in index 0 or 4000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct NodeIndex(u16);

impl TryFrom<u16> for NodeIndex {
    type Error = InvalidValue;
    fn try_from(value: u16) -> Result<NodeIndex, InvalidValue> {
        NodeIndex::new(value)
    }
}

impl From<NodeIndex> for u16 {
    fn from(index: NodeIndex) -> u16 {
        index.0
    }
}

impl NodeIndex {
    pub fn new(value: u16) -> Result<NodeIndex, InvalidValue> {
        if (1..=MAX_INDEX).contains(&value) {
            Ok(NodeIndex(value))
        } else {
            Err(InvalidValue::new("-i", &value.to_string(), INDEX_FORM))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for NodeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

const INDEX_FORM: &str = "an integer in range <1-1023>";

impl FromStr for NodeIndex {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<NodeIndex, InvalidValue> {
        let bad = || InvalidValue::new("-i", s, INDEX_FORM);
        let n: u16 = s.parse().map_err(|_| bad())?;
        NodeIndex::new(n).map_err(|_| bad())
    }
}

/// A value rejected at the edge: which flag, what was given, and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue {
    pub flag: String,
    pub value: String,
    pub accepted: String,
}

impl InvalidValue {
    pub fn new(flag: &str, value: &str, accepted: &str) -> InvalidValue {
        InvalidValue {
            flag: flag.to_string(),
            value: value.to_string(),
            accepted: accepted.to_string(),
        }
    }
}

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} is not valid: expected {}",
            self.flag, self.value, self.accepted
        )
    }
}

impl std::error::Error for InvalidValue {}

mod param;
use param::Typed;
pub use param::*;

/// An IPv4 or IPv6 network with a prefix length and no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s.split_once('/').ok_or("missing /prefix")?;
        let addr: IpAddr = addr.parse().map_err(|_| "bad address")?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err("bad prefix length".into());
        }
        let prefix: u8 = prefix.parse().map_err(|_| "bad prefix length")?;
        let host_bits_clear = match addr {
            IpAddr::V4(v4) if prefix <= 32 => {
                u32::from(v4).checked_shl(u32::from(prefix)).unwrap_or(0) == 0
            }
            IpAddr::V6(v6) if prefix <= 128 => {
                u128::from(v6).checked_shl(u32::from(prefix)).unwrap_or(0) == 0
            }
            _ => return Err("prefix length too long".into()),
        };
        if !host_bits_clear {
            return Err("host bits set".into());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The last event run on a node (or its last dry run, `lastCheck`), shown by `show_node` and
/// `ha_api -c status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastEvent {
    pub event: String,
    /// Local time the event started, `YYYY-mm-dd HH:MM:SS`.
    pub time: String,
    /// The node's line as printed: `200: node 3 peerFail: …`.
    pub outcome: String,
    pub duration_ms: u64,
    /// Seconds since the epoch when the event started, for ages; 0 in records written before
    /// it was kept.
    #[serde(default)]
    pub unix: u64,
}

impl LastEvent {
    /// Whether it succeeded: a `200` or a `199` warning.
    pub fn ok(&self) -> bool {
        !self.outcome.starts_with("400")
    }

    /// Seconds from its start to `now_unix`, if its start is known.
    pub fn age_secs_at(&self, now_unix: u64) -> Option<u64> {
        (self.unix > 0).then(|| now_unix.saturating_sub(self.unix))
    }
}

/// `name(param) -> T = Variant;` becomes `pub fn name(&self) -> Option<T>`: the parameter's value
/// as it was parsed when it entered the process.
macro_rules! typed_accessors {
    ($($(#[$doc:meta])* $name:ident($param:expr) -> $ty:ty = $variant:ident;)*) => {
        $(
            $(#[$doc])*
            pub fn $name(&self) -> Option<$ty> {
                match self.params.get(&$param).map(|v| v.typed) {
                    Some(Typed::$variant(value)) => Some(value),
                    _ => None,
                }
            }
        )*
    };
}

/// A redundancy node as stored in the node database. Every parameter was validated and parsed
/// on its way in; on the wire (frames, the handler's work) it travels as text and is
/// validated again when decoded.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NodeWire", into = "NodeWire")]
pub struct Node {
    pub index: NodeIndex,
    pub provider: Provider,
    params: BTreeMap<Param, Value>,
}

/// A node as text, as it crosses a process boundary.
#[derive(Serialize, Deserialize)]
struct NodeWire {
    index: NodeIndex,
    provider: Provider,
    params: BTreeMap<Param, String>,
}

impl TryFrom<NodeWire> for Node {
    type Error = InvalidValue;
    fn try_from(wire: NodeWire) -> Result<Node, InvalidValue> {
        let mut node = Node::new(wire.index, wire.provider);
        for (param, text) in wire.params {
            if !wire.provider.params().contains(&param) {
                return Err(InvalidValue::new(
                    param.flag(),
                    &text,
                    &format!("no value: not a {} parameter", wire.provider),
                ));
            }
            node.set(param, param.validate(&text, wire.provider)?);
        }
        Ok(node)
    }
}

impl From<Node> for NodeWire {
    fn from(node: Node) -> NodeWire {
        NodeWire {
            index: node.index,
            provider: node.provider,
            params: node.params.into_iter().map(|(p, v)| (p, v.text)).collect(),
        }
    }
}

impl Node {
    /// The route table's identity: file table name, AWS region and route table, Azure cloud,
    /// subscription, resource group and table, GCP project and VPC. Nodes with equal ids share
    /// one handler, and the event manager runs one job per id at a time.
    pub fn route_table_id(&self) -> String {
        let keys: &[Param] = match self.provider {
            Provider::File => &[Param::RouteTable],
            Provider::Aws => &[Param::Region, Param::RouteTableId],
            Provider::Azure => &[
                Param::Cloud,
                Param::SubscriptionId,
                Param::ResourceGroup,
                Param::RouteTableName,
            ],
            Provider::Gcp => &[Param::Project, Param::Vpc],
        };
        let mut id = self.provider.to_string();
        for p in keys {
            id.push('/');
            id.push_str(self.get(*p).unwrap_or_default());
        }
        id
    }

    pub fn new(index: NodeIndex, provider: Provider) -> Node {
        Node {
            index,
            provider,
            params: BTreeMap::new(),
        }
    }

    /// A node with these parameters, each validated as if a client had sent it.
    pub fn with_params(
        index: NodeIndex,
        provider: Provider,
        params: &[(Param, &str)],
    ) -> Result<Node, InvalidValue> {
        let mut node = Node::new(index, provider);
        for (param, text) in params {
            node.set(*param, param.validate(text, provider)?);
        }
        Ok(node)
    }

    /// A parameter's canonical text.
    pub fn get(&self, param: Param) -> Option<&str> {
        self.params.get(&param).map(Value::as_str)
    }

    pub fn has(&self, param: Param) -> bool {
        self.params.contains_key(&param)
    }

    /// Sets a parameter to a value [`Param::validate`] made.
    pub fn set(&mut self, param: Param, value: Value) {
        self.params.insert(param, value);
    }

    pub fn remove(&mut self, param: Param) -> Option<Value> {
        self.params.remove(&param)
    }

    /// Every parameter set, in parameter order.
    pub fn params(&self) -> impl Iterator<Item = (Param, &Value)> {
        self.params.iter().map(|(p, v)| (*p, v))
    }

    /// `-m`; a node without one is secondary.
    pub fn mode(&self) -> Mode {
        self.given_mode().unwrap_or(Mode::Secondary)
    }

    typed_accessors! {
        /// `-m`, if given.
        given_mode(Param::Mode) -> Mode = Mode;
        /// The `-r` route, if the node names one.
        route(Param::Route) -> Cidr = Route;
        /// An Azure node's `-p` cloud.
        azure_cloud(Param::Cloud) -> AzureCloud = AzureCloud;
        /// A GCP node's `-n` next-hop address.
        next_hop_ip(Param::NextHopIp) -> IpAddr = Address;
        /// A GCP node's `-o` route priority (0 is a real value).
        priority(Param::HopPriority) -> u16 = Priority;
    }

    /// Required parameters this node still lacks, as flags (`-t -n`).
    pub fn missing(&self) -> Vec<Param> {
        let mut missing: Vec<Param> = self
            .provider
            .required()
            .into_iter()
            .filter(|p| !self.has(*p))
            .collect();
        if self.provider == Provider::Azure && self.has(Param::AppId) {
            for p in [Param::TenantId, Param::AppKey] {
                if !self.has(p) {
                    missing.push(p);
                }
            }
        }
        missing
    }

    /// Parameter lines as the original printed them: key padded to 15 columns, then the value.
    /// Secrets are masked.
    pub fn describe(&self) -> String {
        let mut out = format!("{:15}{}\n", "index", self.index);
        for param in self.provider.params() {
            if let Some(value) = self.get(param) {
                let shown = if param.is_secret() {
                    mask(value)
                } else {
                    value.to_string()
                };
                out.push_str(&format!("{:15}{}\n", param.key(), shown));
            }
        }
        out
    }

    /// The node as JSON for scripts, secrets masked.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        map.insert("index".into(), self.index.get().into());
        map.insert("provider".into(), self.provider.as_str().into());
        for (param, value) in &self.params {
            let shown = if param.is_secret() {
                mask(value.as_str())
            } else {
                value.text.clone()
            };
            map.insert(param.key().into(), shown.into());
        }
        serde_json::Value::Object(map)
    }
}

/// Debug output (logs, panics) masks secrets like `describe()` does.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params: BTreeMap<&str, String> = self
            .params
            .iter()
            .map(|(p, v)| {
                let shown = if p.is_secret() {
                    mask(v.as_str())
                } else {
                    v.text.clone()
                };
                (p.key(), shown)
            })
            .collect();
        f.debug_struct("Node")
            .field("index", &self.index)
            .field("provider", &self.provider)
            .field("params", &params)
            .finish()
    }
}

/// Shows that a secret is set without showing it.
pub fn mask(secret: &str) -> String {
    if secret.is_empty() {
        String::new()
    } else {
        "********".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_accepts_networks_and_rejects_host_bits() {
        assert_eq!(
            "10.99.0.0/16".parse::<Cidr>().map(|c| c.to_string()),
            Ok("10.99.0.0/16".into())
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().map(|c| c.prefix), Ok(0));
        assert_eq!(
            "2001:db8::/32".parse::<Cidr>().map(|c| c.to_string()),
            Ok("2001:db8::/32".into())
        );
        for bad in [
            "10.99.0.1/16",
            "10.99.0.0",
            "10.99.0.0/33",
            "not-a-cidr",
            "2001:db8::1/32",
            "1.2.3.4/",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ids_and_names_follow_their_patterns() {
        assert!(Param::RouteTableId
            .validate("rtb-0a1b2c3d", Provider::Aws)
            .is_ok());
        assert!(Param::RouteTableId
            .validate("rtb-0A1B2C3D", Provider::Aws)
            .is_err());
        assert!(Param::EniId.validate("eni-0a1b2c3", Provider::Aws).is_err());
        assert!(is_gcp_name("route-a1"));
        assert!(!is_gcp_name("route-a1-"));
        assert!(!is_gcp_name("Route"));
        assert!(!is_gcp_name("1route"));
        assert!(Param::HopPriority.validate("0", Provider::Gcp).is_ok());
        assert!(Param::HopPriority.validate("65536", Provider::Gcp).is_err());
        assert!(Param::Cloud.validate("azchina", Provider::Azure).is_ok());
        assert!(Param::Cloud.validate("gcp", Provider::Azure).is_err());
    }

    #[test]
    fn index_range_is_enforced() {
        assert!("0".parse::<NodeIndex>().is_err());
        assert!("1024".parse::<NodeIndex>().is_err());
        assert!("abc".parse::<NodeIndex>().is_err());
        assert_eq!("1023".parse::<NodeIndex>().map(NodeIndex::get), Ok(1023));
    }

    #[test]
    fn debug_output_masks_the_app_key() {
        let mut node = Node::new(NodeIndex(4), Provider::Azure);
        node.set(Param::AppKey, Value::text("TopSecretKey"));
        let shown = format!("{node:?}");
        assert!(
            !shown.contains("TopSecretKey") && shown.contains("appKey"),
            "{shown}"
        );
    }

    #[test]
    fn missing_names_required_params_and_azure_app_credentials() {
        let mut node = Node::new(NodeIndex(1), Provider::Azure);
        node.set(Param::AppId, Value::text("abc"));
        let missing = node.missing();
        assert!(missing.contains(&Param::TenantId) && missing.contains(&Param::AppKey));
        assert!(missing.contains(&Param::SubscriptionId));
    }
}
