//! Azure route tables (user-defined routes) through Azure Resource Manager: the provider (open,
//! read, plan, write): [`AzureTable`], a [`RouteTable`]. `client.rs` holds ARM's requests and
//! answers (`ArmClient`), `auth.rs` the token sources.
//!
//! ```text
//! read   GET {arm}/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Network/routeTables/{t}?api-version=2024-05-01
//!        200 {"name":"t","properties":{"routes":[{"name":"r1","properties":{
//!              "addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.10"}}]}}
//! write  PUT {arm}/…/routeTables/{t}/routes/{name}?api-version=2024-05-01       (node with -r)
//!        {"properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.20"}}
//!        If-Match: <route etag>                                        (verify only)
//!        PUT {arm}/…/routeTables/{t}?api-version=2024-05-01             (all-routes node: one PUT)
//!        {"location":"…","tags":{…},"properties":{"routes":[…every route…]}}   If-Match: <table etag>
//!        412 → read the table again, recompute, PUT again
//!        then followed to its end in whichever form ARM answers (see `client.rs`)
//! ```
//!
//! Only `VirtualAppliance` routes point at a router, so only they get a next hop and may move;
//! routes to `Internet`, `VnetLocal`, gateways or `None` are read but never written. A route
//! without a `name` (the schema allows it) cannot be addressed by ARM: it is read, never moved,
//! and sent back unchanged in a table PUT.

mod auth;
mod client;
mod default_app;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;

use self::auth::{Credential, Tokens};
use self::client::{ArmClient, TableBody, API_VERSION, ROUTE_WRITE, TABLE_WRITE};
use super::http::{self, Method};
use super::planner::{fail_all, first_node, required, run_table};
use super::token_cache::TokenCache;
use super::{CloudError, Permission, Route, RouteTable, RouteWrite};
use crate::event_log::EventLog;
use crate::node::{AzureCloud, Cidr, Node, Param};
use crate::paths::HaDir;
use crate::percent;
use crate::work::{NodeOutcome, Work};

pub use self::auth::{decode_app_key, IMDS_API_VERSION};
pub use self::client::{action_matches, MAX_POLL_INTERVAL};
pub use self::default_app::DefaultApp;

/// Where the provider talks to, resolved once per handler. Tests fill it by hand so they never
/// touch the process environment; [`AzureConfig::from_env`] is what [`run`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// Azure Resource Manager base URL, no trailing `/`.
    pub arm: String,
    /// Azure AD login base URL (the tenant id follows), no trailing `/`.
    pub login: String,
    /// Instance metadata service base URL, no trailing `/`.
    pub imds: String,
    /// ARM's resource URI (`https://management.azure.com/`): the token audience, asked for as
    /// `resource=` from IMDS and as `scope=<resource>/.default` from Azure AD.
    pub resource: String,
    /// How long to wait between polls of a long-running write when ARM sends no `Retry-After`.
    pub poll_interval: Duration,
    /// Where tokens are kept between events.
    pub cache: TokenCache,
    /// The default Azure AD app's file (`~/cloud/authMgr/aad_app_file`), read for nodes
    /// without `-a`; `None`: nodes without `-a` use the managed identity.
    pub default_app: Option<PathBuf>,
}

impl AzureConfig {
    /// The public endpoints of `cloud` (`azure`, `azusgov`, `azchina`).
    pub fn for_cloud(cloud: AzureCloud) -> AzureConfig {
        let (arm, login) = match cloud {
            AzureCloud::Public => (
                "https://management.azure.com",
                "https://login.microsoftonline.com",
            ),
            AzureCloud::UsGov => (
                "https://management.usgovcloudapi.net",
                "https://login.microsoftonline.us",
            ),
            AzureCloud::China => (
                "https://management.chinacloudapi.cn",
                "https://login.chinacloudapi.cn",
            ),
        };
        AzureConfig {
            arm: arm.to_string(),
            login: login.to_string(),
            imds: "http://169.254.169.254".to_string(),
            resource: format!("{arm}/"),
            poll_interval: Duration::from_secs(1),
            cache: TokenCache::disabled(),
            default_app: None,
        }
    }

    /// The Azure AD v2.0 scope for ARM: the resource URI and `/.default` (the app's
    /// permissions as granted), one `/` between them as MSAL and azure-identity write it.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.resource.trim_end_matches('/'))
    }

    /// [`AzureConfig::for_cloud`] with each endpoint overridable by `CSR_HA_AZURE_ARM_ENDPOINT`,
    /// `CSR_HA_AZURE_LOGIN_ENDPOINT` and `CSR_HA_AZURE_IMDS_ENDPOINT`. The token audience stays
    /// the cloud's: an overridden ARM endpoint (a proxy, a test fake) still wants ARM's tokens.
    /// Tokens are kept in `dir`'s credential cache; the default app is `$HOME`'s.
    pub fn from_env(cloud: AzureCloud, dir: &HaDir) -> AzureConfig {
        AzureConfig {
            cache: TokenCache::of(dir),
            ..AzureConfig::endpoints_from_env(cloud)
        }
    }

    /// [`AzureConfig::for_cloud`] with the endpoints the environment names, the default app
    /// `$HOME`'s, and no token cache (`set_default_aad_app` asks Azure AD itself).
    pub fn endpoints_from_env(cloud: AzureCloud) -> AzureConfig {
        let defaults = AzureConfig::for_cloud(cloud);
        AzureConfig {
            arm: http::endpoint(&["CSR_HA_AZURE_ARM_ENDPOINT"], &defaults.arm),
            login: http::endpoint(&["CSR_HA_AZURE_LOGIN_ENDPOINT"], &defaults.login),
            imds: http::endpoint(&["CSR_HA_AZURE_IMDS_ENDPOINT"], &defaults.imds),
            default_app: DefaultApp::path_from_env(),
            ..defaults
        }
    }
}

/// Runs `work` with endpoints from the environment (the cloud is the first node's `-p`).
pub fn run(work: &Work, deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    let config = first_node(work)
        .and_then(|node| {
            required(node, Param::Cloud)?;
            node.azure_cloud().ok_or_else(|| {
                CloudError::Local(format!(
                    "-p is not an Azure cloud: expected {}",
                    AzureCloud::ACCEPTED
                ))
            })
        })
        .map(|cloud| AzureConfig::from_env(cloud, &work.dir()));
    match config {
        Ok(config) => run_with(work, deadline, log, &config),
        Err(e) => fail_all(work, &e, log),
    }
}

/// Runs `work` against `config`'s endpoints: reads the table once, writes what differs.
pub fn run_with(
    work: &Work,
    deadline: Instant,
    log: &mut EventLog,
    config: &AzureConfig,
) -> Vec<NodeOutcome> {
    let table = open(work, deadline, config.clone());
    if let Ok(table) = &table {
        for node in &work.nodes {
            log.line(
                node.index.get(),
                &format!("Credentials: {}", table.signs_in_as),
            );
        }
    }
    run_table(table, work, log)
}

/// Opens the route table named by the group's first node. No request is made yet: credentials
/// are fetched on the first read, so a `check` reports them as a warning.
pub fn open(work: &Work, deadline: Instant, config: AzureConfig) -> Result<AzureTable, CloudError> {
    let node = first_node(work)?;
    let subscription = required(node, Param::SubscriptionId)?;
    let group = required(node, Param::ResourceGroup)?;
    let name = required(node, Param::RouteTableName)?.to_string();
    let credential = credential(node, &config)?;
    let table_url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/routeTables/{}",
        config.arm,
        segment(subscription),
        segment(group),
        segment(&name)
    );
    let signs_in_as = credential.describe();
    let tokens = Tokens::new(credential, config.clone());
    Ok(AzureTable {
        signs_in_as,
        location: format!("resource group {group}, subscription {subscription}"),
        arm: ArmClient::new(name, table_url, tokens, config, deadline),
        raw: HashMap::new(),
        table: None,
        whole_table: work.nodes.iter().any(|n| n.route().is_none()),
    })
}

/// The credential `node` signs in with: its own app, else the default app in
/// `config.default_app` (read only for a node without `-a`), else the managed identity.
fn credential(node: &Node, config: &AzureConfig) -> Result<Credential, CloudError> {
    let default = match &config.default_app {
        Some(path) if !node.has(Param::AppId) => DefaultApp::load(path)?,
        _ => None,
    };
    Credential::of(node, default.as_ref())
}

/// Which credential an Azure `node` signs in with here (this process's `$HOME` for the default
/// app), for `ha_api -c status`: its app and tenant ids, never the key, or why there is none.
pub fn credential_in_use(node: &Node) -> String {
    let cloud = node.azure_cloud().unwrap_or(AzureCloud::Public);
    let config = AzureConfig::endpoints_from_env(cloud);
    match credential(node, &config) {
        Ok(credential) => credential.describe(),
        Err(e) => format!("none usable: {e}"),
    }
}

/// Gets a token for an Azure AD app from `config`'s login endpoint, without the token cache:
/// what `set_default_aad_app` proves before it keeps an app. The error names the app and what
/// Azure AD answered, never the key.
pub fn verify_app(
    config: &AzureConfig,
    app: &DefaultApp,
    deadline: Instant,
) -> Result<(), CloudError> {
    let credential = Credential::app(app, false);
    let config = AzureConfig {
        cache: TokenCache::disabled(),
        ..config.clone()
    };
    let tokens = Tokens::new(credential, config);
    tokens
        .token(deadline)
        .map(|_| ())
        .map_err(|e| tokens.scrub_error(e))
}

/// One Azure route table and what is needed to reach it; a [`RouteTable`] ([`open`] makes one).
pub struct AzureTable {
    /// The table's ARM calls, with its name and URL.
    arm: ArmClient,
    /// `resource group g, subscription s`, for messages.
    location: String,
    /// Which credential the table is read and written with (ids, never a key), for the log.
    signs_in_as: String,
    /// Route name → its prefix as ARM holds it and its etag, as last read.
    raw: HashMap<String, RawRoute>,
    /// The table as last read (with its etag), for a whole-table write.
    table: Option<serde_json::Value>,
    /// A node acts on every route (no `-r`): the event's writes go out as one table PUT.
    whole_table: bool,
}

/// ARM's error body, as ARM and the Azure AD login endpoint send it: `{"error":{"code","message"}}` (or the same fields at the top level); `None` if the
/// body is not ARM's.
fn parse_error(_status: u16, body: &str) -> Option<(String, String)> {
    #[derive(Deserialize)]
    struct Detail {
        code: Option<String>,
        message: Option<String>,
    }
    #[derive(Deserialize)]
    struct Envelope {
        error: Option<Detail>,
        code: Option<String>,
        message: Option<String>,
    }
    let (code, message) = match serde_json::from_str::<Envelope>(body).ok()? {
        Envelope { error: Some(d), .. } => (d.code, d.message),
        Envelope { code, message, .. } => (code, message),
    };
    Some((code?, message.unwrap_or_default()))
}

/// Percent-encodes one URL path segment (resource group names may hold `(`, `.`, non-ASCII).
fn segment(value: &str) -> String {
    percent::encode(value, percent::PATH_SEGMENT)
}

/// An IP address as `std` writes it (`2001:DB8::A` → `2001:db8::a`), or as given if it is none.
fn canonical_ip(ip: String) -> String {
    ip.parse::<std::net::IpAddr>().map_or(ip, |a| a.to_string())
}

/// The body of a Route Tables - Create Or Update that applies `writes` to `table` as read, and
/// each write's result. Only what a client may set is sent back (location, tags, routes, BGP
/// propagation): read-only fields such as `subnets` and `provisioningState` are left out.
fn table_update(
    table: &serde_json::Value,
    writes: &[RouteWrite],
) -> (serde_json::Value, Vec<Result<(), CloudError>>) {
    use serde_json::{json, Value};
    let mut routes: Vec<Value> = table
        .pointer("/properties/routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let results = writes
        .iter()
        .map(|w| {
            let named = |r: &&mut Value| r["name"].as_str() == Some(w.route.id.as_str());
            let Some(route) = routes
                .iter_mut()
                .find(named)
                .filter(|_| !w.route.id.is_empty())
            else {
                return Err(CloudError::Local(format!(
                    "route {} ({}) is no longer in the table",
                    w.route.id, w.route.destination
                )));
            };
            let props = &mut route["properties"];
            let appliance = props["nextHopType"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("VirtualAppliance"));
            let now = props["nextHopIpAddress"]
                .as_str()
                .filter(|_| appliance)
                .map(|ip| canonical_ip(ip.to_string()));
            if w.conditional && now != w.route.next_hop {
                return Err(CloudError::Changed { now });
            }
            props["nextHopType"] = json!("VirtualAppliance");
            props["nextHopIpAddress"] = json!(w.next_hop);
            Ok(())
        })
        .collect();
    let routes: Vec<Value> = routes
        .iter()
        .map(|r| {
            let p = &r["properties"];
            let mut props = json!({
                "addressPrefix": p["addressPrefix"],
                "nextHopType": p["nextHopType"],
            });
            if let Some(ip) = p.get("nextHopIpAddress") {
                props["nextHopIpAddress"] = ip.clone();
            }
            // A route without a name goes back without one, as it was read.
            let mut route = json!({ "properties": props });
            if let Some(name) = r.get("name").filter(|n| n.is_string()) {
                route["name"] = name.clone();
            }
            route
        })
        .collect();
    let mut properties = json!({ "routes": routes });
    if let Some(bgp) = table.pointer("/properties/disableBgpRoutePropagation") {
        properties["disableBgpRoutePropagation"] = bgp.clone();
    }
    let mut body = json!({ "location": table["location"], "properties": properties });
    if let Some(tags) = table.get("tags") {
        body["tags"] = tags.clone();
    }
    (body, results)
}

/// What a write needs of a route as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawRoute {
    /// `addressPrefix` exactly as ARM holds it, so a write sends it back unchanged.
    prefix: String,
    /// The route's etag, for a conditional write's `If-Match`.
    etag: Option<String>,
}

/// Why a route without a name is never moved (see [`Route::pinned`]).
const NAMELESS: &str = "it has no name, so Azure Resource Manager cannot address it";

/// The routes of a Route Tables - Get answer; each route's raw prefix and etag go into `raw`.
fn parse_routes(body: &str, raw: &mut HashMap<String, RawRoute>) -> Result<Vec<Route>, String> {
    let table: TableBody = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let routes = table.properties.map(|p| p.routes).unwrap_or_default();
    raw.clear();
    Ok(routes
        .into_iter()
        .map(|r| {
            let prefix = r.properties.address_prefix.unwrap_or_default();
            // Service tags (`AzureCloud`) are kept as written; they never match a -r CIDR.
            let destination = prefix
                .parse::<Cidr>()
                .map_or_else(|_| prefix.clone(), |c| c.to_string());
            let next_hop = match r.properties.next_hop_type.as_deref() {
                Some(t) if t.eq_ignore_ascii_case("VirtualAppliance") => {
                    r.properties.next_hop_ip_address.map(canonical_ip)
                }
                _ => None,
            };
            let Some(name) = r.name.filter(|n| !n.is_empty()) else {
                return Route {
                    destination,
                    next_hop,
                    id: String::new(),
                    pinned: Some(NAMELESS.to_string()),
                };
            };
            raw.insert(
                name.clone(),
                RawRoute {
                    prefix,
                    etag: r.etag,
                },
            );
            Route {
                destination,
                next_hop,
                id: name,
                pinned: None,
            }
        })
        .collect())
}

impl RouteTable for AzureTable {
    fn name(&self) -> String {
        self.arm.name.clone()
    }

    /// Every error leaves through `ArmClient::scrub_error`: a login endpoint may echo the key.
    fn read(&mut self) -> Result<Vec<Route>, CloudError> {
        self.read_table().map_err(|e| self.arm.scrub_error(e))
    }

    /// All-routes nodes: the whole table in one PUT ([`Self::put_table`]). Single-route nodes:
    /// one route PUT per write; a conditional write (`verify`) carries `If-Match` with the
    /// route's etag as read, and a 412 means it changed since and is not rewritten.
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let results = if self.whole_table && !writes.is_empty() {
            self.put_table(writes)
        } else {
            writes.iter().map(|w| self.put_route(w)).collect()
        };
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.arm.scrub_error(e)))
            .collect()
    }
    /// Permissions - List For Resource on the table, for the action this event's write needs:
    /// `routes/write` for route PUTs, `routeTables/write` for an all-routes table PUT.
    fn probe_write(&mut self, _writes: &[RouteWrite]) -> Permission {
        let action = if self.whole_table {
            TABLE_WRITE
        } else {
            ROUTE_WRITE
        };
        match self.arm.probe(action) {
            Permission::NotProven(why) => Permission::NotProven(self.arm.scrub(&why)),
            found => found,
        }
    }
}

impl AzureTable {
    fn route_url(&self, name: &str) -> String {
        format!(
            "{}/routes/{}?api-version={API_VERSION}",
            self.arm.table_url,
            segment(name)
        )
    }

    fn read_table(&mut self) -> Result<Vec<Route>, CloudError> {
        let url = format!("{}?api-version={API_VERSION}", self.arm.table_url);
        let what = format!("reading Route Table {}", self.arm.name);
        let reply = self.arm.call(Method::Get, &url, &what)?;
        if reply.status == 404 && client::error_code(&reply).as_deref() == Some("ResourceNotFound")
        {
            return Err(CloudError::TableNotFound(format!(
                "{} ({})",
                self.arm.name, self.location
            )));
        }
        if reply.status != 200 {
            return Err(self.arm.api_error(&reply));
        }
        self.table = serde_json::from_str(&reply.body).ok();
        parse_routes(&reply.body, &mut self.raw).map_err(|e| {
            CloudError::Transport(format!(
                "Azure answered {what} with something that is not a route table ({e})"
            ))
        })
    }

    /// The whole table in one PUT carrying `If-Match` with the etag it was read with, one
    /// long-running operation followed to completion. A 412 means another writer changed the
    /// table meanwhile: it is read again, the writes recomputed on it (a conditional write whose
    /// route changed is dropped as [`CloudError::Changed`]) and sent again, within the deadline.
    fn put_table(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let what = format!("writing Route Table {}", self.arm.name);
        let url = format!("{}?api-version={API_VERSION}", self.arm.table_url);
        loop {
            let Some(table) = self.table.clone() else {
                let e = CloudError::Local(format!("Route Table {} was not read", self.arm.name));
                return writes.iter().map(|_| Err(e.clone())).collect();
            };
            let (body, results) = table_update(&table, writes);
            if results.iter().all(Result::is_err) {
                return results;
            }
            let etag = table["etag"].as_str().map(str::to_string);
            let headers: Vec<(&str, &str)> =
                etag.iter().map(|e| ("If-Match", e.as_str())).collect();
            let body = body.to_string();
            let sent = self
                .arm
                .call_with(Method::Put, &url, &what, &headers, Some(&body));
            let outcome = match sent {
                Ok(reply) if reply.status == 412 => {
                    log::info!(
                        "azure: Route Table {} changed since it was read: reading it again",
                        self.arm.name
                    );
                    match self.read_table() {
                        Ok(_) if http::wait_within(Duration::ZERO, self.arm.deadline).is_some() => {
                            continue
                        }
                        Ok(_) => Err(CloudError::Transport(format!(
                            "Route Table {} kept changing until the event's deadline: not written",
                            self.arm.name
                        ))),
                        Err(e) => Err(e),
                    }
                }
                Ok(reply) if (200..=202).contains(&reply.status) => {
                    self.arm.follow(reply, &what, &url)
                }
                Ok(reply) => Err(self.arm.api_error(&reply)),
                Err(e) => Err(e),
            };
            return results
                .into_iter()
                .map(|r| r.and_then(|()| outcome.clone()))
                .collect();
        }
    }

    fn put_route(&mut self, write: &RouteWrite) -> Result<(), CloudError> {
        let route = &write.route;
        let raw = self.raw.get(&route.id).cloned();
        let prefix = raw
            .as_ref()
            .map_or_else(|| route.destination.clone(), |r| r.prefix.clone());
        let body = serde_json::json!({
            "properties": {
                "addressPrefix": prefix,
                "nextHopType": "VirtualAppliance",
                "nextHopIpAddress": write.next_hop,
            }
        })
        .to_string();
        let what = format!(
            "writing route {} ({}) in Route Table {}",
            route.id, route.destination, self.arm.name
        );
        let etag = raw.and_then(|r| r.etag).filter(|_| write.conditional);
        let headers: Vec<(&str, &str)> = etag.iter().map(|e| ("If-Match", e.as_str())).collect();
        let url = self.route_url(&route.id);
        let reply = self
            .arm
            .call_with(Method::Put, &url, &what, &headers, Some(&body))?;
        match reply.status {
            200..=202 => self.arm.follow(reply, &what, &url),
            412 => Err(self.changed(&route.id)),
            _ => Err(self.arm.api_error(&reply)),
        }
    }

    /// The [`CloudError::Changed`] for a route whose etag no longer matched: read again to say
    /// where it points now.
    fn changed(&mut self, route: &str) -> CloudError {
        let now = self.read_table().ok().and_then(|routes| {
            routes
                .into_iter()
                .find(|r| r.id == route)
                .and_then(|r| r.next_hop)
        });
        CloudError::Changed { now }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_with_only_virtual_appliances_movable() {
        let body = r#"{"name":"t","properties":{"routes":[
            {"name":"r1","properties":{"addressPrefix":"10.99.0.0/16","nextHopType":"VirtualAppliance","nextHopIpAddress":"10.0.1.10"}},
            {"name":"r6","properties":{"addressPrefix":"2001:DB8::/32","nextHopType":"VirtualAppliance","nextHopIpAddress":"2001:DB8::A"}},
            {"name":"web","properties":{"addressPrefix":"0.0.0.0/0","nextHopType":"Internet"}},
            {"name":"tag","properties":{"addressPrefix":"AzureCloud","nextHopType":"None"}}]}}"#;
        let mut raw = HashMap::new();
        let routes = parse_routes(body, &mut raw).expect("parses");
        assert_eq!(routes.len(), 4);
        assert_eq!(routes[0].next_hop.as_deref(), Some("10.0.1.10"));
        assert_eq!(routes[1].destination, "2001:db8::/32");
        assert_eq!(routes[1].next_hop.as_deref(), Some("2001:db8::a"));
        assert_eq!(
            raw.get("r6").map(|r| r.prefix.as_str()),
            Some("2001:DB8::/32")
        );
        assert!(!routes[2].movable() && !routes[3].movable());
        assert_eq!(routes[3].destination, "AzureCloud");
        assert!(parse_routes("<html>", &mut raw).is_err());
    }
    #[test]
    fn each_cloud_has_its_own_endpoints() {
        let gov = AzureConfig::for_cloud(AzureCloud::UsGov);
        assert_eq!(gov.arm, "https://management.usgovcloudapi.net");
        assert_eq!(gov.login, "https://login.microsoftonline.us");
        assert_eq!(gov.resource, "https://management.usgovcloudapi.net/");
        let china = AzureConfig::for_cloud(AzureCloud::China);
        assert_eq!(china.login, "https://login.chinacloudapi.cn");
        assert_eq!(china.imds, "http://169.254.169.254");
    }

    /// The scope asked of Azure AD (v2.0) is each cloud's ARM resource with `/.default`, as MSAL
    /// writes it.
    #[test]
    fn each_cloud_asks_for_its_resource_manager_scope() {
        let scope = |cloud| AzureConfig::for_cloud(cloud).scope();
        assert_eq!(
            scope(AzureCloud::Public),
            "https://management.azure.com/.default"
        );
        assert_eq!(
            scope(AzureCloud::UsGov),
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(
            scope(AzureCloud::China),
            "https://management.chinacloudapi.cn/.default"
        );
    }
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("rg-(prod).1"), "rg-(prod).1");
        assert_eq!(segment("a b/é"), "a%20b%2F%C3%A9");
    }
}
