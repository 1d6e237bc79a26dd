//! AWS VPC route tables over the EC2 Query API, with no SDK.
//!
//! A node names its table, region and own network interface: `-t rtb-… -rg us-east-1 -n eni-…`.
//! An event reads the table once (`DescribeRouteTables`) and moves routes with `ReplaceRoute`
//! (`NetworkInterfaceId`, and `DestinationCidrBlock` or `DestinationIpv6CidrBlock`) — except a
//! peerFail of nodes with a route (`-r`): `ReplaceRoute` is idempotent and its answer is the
//! confirmation, so it is sent at once, without the read (one round trip; a route that is not
//! there is EC2's `InvalidRoute.NotFound`). Only routes
//! that point at a network interface can move: the local route, gateways, NAT and peering routes
//! have no next hop here ([`Route::next_hop`] is `None`), so the generic engine never touches
//! them (AWS would refuse anyway).
//!
//! Endpoints: `AWS_ENDPOINT_URL_EC2`, else `AWS_ENDPOINT_URL`, else
//! `https://ec2.<region>.amazonaws.com`; the API honours `HTTPS_PROXY`/`NO_PROXY`, the metadata
//! service is never proxied. Credentials: `auth.rs`, an ordered list of providers
//! ([`CredentialSources`]); `client.rs` holds [`Ec2Client`], the signed Query API calls
//! (`sigv4.rs` the signing). Everything the environment decides
//! is gathered in [`AwsConfig`], so tests pass it explicitly instead of mutating the process
//! environment.

mod auth;
mod client;
mod sigv4;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

pub use self::auth::{CredentialSources, ImdsConfig, IMDS_V1_KIND};

use self::auth::Context;
pub use self::client::Ec2Client;

use self::client::{QueryApi, EC2_VERSION};
pub use self::sigv4::Credentials;

use super::http::{Client, Service};
use super::planner::{apply, first_node, required, run_table};
use super::token_cache::TokenCache;
use super::{CloudError, Permission, Route, RouteTable, RouteWrite};
use crate::event_log::EventLog;
use crate::node::{Cidr, Param};
use crate::paths::HaDir;
use crate::protocol::Status;
use crate::work::{Action, NodeOutcome, Work};

/// What the AWS provider takes from the environment.
#[derive(Debug, Clone, Default)]
pub struct AwsConfig {
    /// The EC2 endpoint; `None` means `https://ec2.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    pub credentials: CredentialSources,
    /// Route writes of one event in flight at once (`CSR_HA_AWS_WRITES_IN_FLIGHT`); `None`
    /// means [`WRITES_IN_FLIGHT`].
    pub writes_in_flight: Option<usize>,
}

/// How many `ReplaceRoute` calls of one event go out at once by default: enough to turn a
/// 200-route revert into ~50 round trips, few enough to stay under EC2's request-rate limits
/// (throttled calls are retried with backoff anyway).
pub const WRITES_IN_FLIGHT: usize = 4;

impl AwsConfig {
    /// The configuration the AWS CLI would use in this environment, with role credentials kept
    /// in the HA directory's credential cache.
    pub fn from_env(dir: &HaDir) -> AwsConfig {
        let endpoint =
            crate::cloud::http::endpoint(&["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"], "");
        AwsConfig {
            endpoint: (!endpoint.is_empty()).then_some(endpoint),
            credentials: CredentialSources::from_env(TokenCache::of(dir)),
            writes_in_flight: std::env::var("CSR_HA_AWS_WRITES_IN_FLIGHT")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|n| *n > 0),
        }
    }

    /// The EC2 endpoint for `region`.
    pub fn endpoint_for(&self, region: &str) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None if region.starts_with("cn-") => format!("https://ec2.{region}.amazonaws.com.cn"),
            None => format!("https://ec2.{region}.amazonaws.com"),
        }
    }
}

/// Runs `work` configured from the environment.
pub fn run(work: &Work, deadline: Instant, log: &mut EventLog) -> Vec<NodeOutcome> {
    run_with(work, deadline, log, &AwsConfig::from_env(&work.dir()))
}

/// Runs `work` against `config`: finds credentials, reads the table once, writes what differs.
pub fn run_with(
    work: &Work,
    deadline: Instant,
    log: &mut EventLog,
    config: &AwsConfig,
) -> Vec<NodeOutcome> {
    let opened = Ec2Table::open(work, deadline, config);
    let on_role = opened.as_ref().is_ok_and(|table| table.refresh.is_some());
    let mut outcomes = match opened {
        Ok(mut table) if work.action == Action::Check => table.check(work, log),
        opened => run_table(opened, work, log),
    };
    let checking = matches!(work.action, Action::DryRun(_) | Action::Check);
    if let Some(warning) = config
        .credentials
        .imds_v1_warning()
        .filter(|_| on_role && checking)
    {
        for outcome in &mut outcomes {
            log.line(outcome.index, &format!("Warning: {warning}"));
            outcome.outcome = outcome.outcome.max(Status::Warning);
            outcome.message = format!("{}; Warning: {warning}", outcome.message);
        }
    }
    outcomes
}

/// One VPC route table.
pub struct Ec2Table {
    client: Ec2Client,
    table_id: String,
    deadline: Instant,
    in_flight: usize,
    /// Where cached credentials came from (the instance role), to fetch them again once if EC2
    /// refuses them: the instance's role may have been replaced, or the cached keys revoked,
    /// before they expire. `None` for keys read locally, or once fetched again.
    refresh: Option<CredentialSources>,
    /// EC2 in a region every account has, in the node region's partition: where the check
    /// asks `DescribeRegions`.
    regions: QueryApi,
}

/// EC2 codes that mean "these credentials are not (or no longer) good".
const REFUSED: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "InvalidClientTokenId",
    "ExpiredToken",
    "RequestExpired",
];

/// The region every account has in `region`'s partition (China, GovCloud, the rest): where
/// `DescribeRegions` can tell a wrong `-rg` from a call that failed.
fn first_region_of_partition(region: &str) -> &'static str {
    const PARTITIONS: [(&str, &str); 2] = [("cn-", "cn-north-1"), ("us-gov-", "us-gov-west-1")];
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("us-east-1", |(_, first)| first)
}

impl Ec2Table {
    /// The node's table (`-t`) in its region (`-rg`), with the first credentials the sources
    /// give (`auth.rs`), STS asked through the same HTTP client as EC2.
    pub fn open(
        work: &Work,
        deadline: Instant,
        config: &AwsConfig,
    ) -> Result<Ec2Table, CloudError> {
        let node = first_node(work)?;
        let table_id = required(node, Param::RouteTableId)?;
        let region = required(node, Param::Region)?;
        let http = Client::new(Service::Aws);
        let context = Context {
            http: &http,
            region,
            deadline,
        };
        let resolved = config.credentials.resolve(&context)?;
        log::info!(
            "node {}: AWS credentials from {}, key id {}",
            node.index,
            resolved.source,
            resolved.credentials.access_key_id
        );
        let anchor = first_region_of_partition(region);
        let client = Ec2Client::new(
            http,
            &config.endpoint_for(region),
            region,
            resolved.credentials,
        )?;
        Ok(Ec2Table {
            client,
            table_id: table_id.to_string(),
            deadline,
            in_flight: config.writes_in_flight.unwrap_or(WRITES_IN_FLIGHT).max(1),
            refresh: resolved.cached.then(|| config.credentials.clone()),
            regions: QueryApi::new(&config.endpoint_for(anchor), anchor, "ec2", EC2_VERSION)?,
        })
    }

    /// Cached credentials EC2 refused: forgotten, fetched again, and used from now on. `false`
    /// if there is nothing to fetch again (keys from the environment or a file).
    fn refresh_role(&mut self) -> Result<bool, CloudError> {
        let Some(sources) = self.refresh.take() else {
            return Ok(false);
        };
        log::info!("AWS refused the cached credentials: fetching them again");
        sources.forget();
        let context = Context {
            http: self.client.http(),
            region: self.client.region(),
            deadline: self.deadline,
        };
        let resolved = sources.resolve(&context)?;
        self.client.use_credentials(resolved.credentials);
        Ok(true)
    }

    /// HTTP requests sent so far (retries included), for benchmarks.
    pub fn calls(&self) -> u32 {
        self.client.calls()
    }
}

/// What `DescribeRegions` says of the node's region.
enum RegionCheck {
    Listed,
    /// Not an EC2 region: nothing else can be checked there.
    Missing(String),
    /// Could not be asked (no permission, no connection): said, and the rest checked.
    Unverified(String),
}

impl Ec2Table {
    /// The live check after `create_node`/`set_params`, as the original's `validate_inputs`:
    /// the region (`DescribeRegions`), the table and route (the planner's check), each node's
    /// ENI (`DescribeNetworkInterfaces`). Each finding is one more `Warning:` line of a `199`
    /// answer, in the original's words; nothing is refused.
    fn check(&mut self, work: &Work, log: &mut EventLog) -> Vec<NodeOutcome> {
        let started = Instant::now();
        let region_warning = match self.check_region() {
            RegionCheck::Listed => None,
            RegionCheck::Missing(warning) => {
                return (work.nodes.iter())
                    .map(|n| NodeOutcome::new(n.index.get(), Status::Warning, &warning, started))
                    .collect()
            }
            RegionCheck::Unverified(warning) => Some(warning),
        };
        let mut outcomes = apply(self, work, log);
        for outcome in &mut outcomes {
            let node = work.nodes.iter().find(|n| n.index.get() == outcome.index);
            let eni = node.and_then(|n| n.get(Param::EniId));
            let mut warnings: Vec<String> = region_warning.iter().cloned().collect();
            warnings.extend(eni.and_then(|eni| self.check_eni(eni)));
            for warning in &warnings {
                log.line(outcome.index, warning);
            }
            if warnings.is_empty() {
                continue;
            }
            if outcome.outcome == Status::Ok {
                outcome.message = warnings.join("\n");
            } else {
                outcome.message = format!("{}\n{}", outcome.message, warnings.join("\n"));
            }
            outcome.outcome = outcome.outcome.max(Status::Warning);
        }
        outcomes
    }

    /// `DescribeRegions` for the node's region, asked of a region every account has (its
    /// partition's first), so that a wrong `-rg` is told apart from a failing call.
    fn check_region(&self) -> RegionCheck {
        let region = self.client.region().to_string();
        let params = [("RegionName.1", region.as_str())];
        let answer = self.regions.call(
            self.client.http(),
            self.client.credentials(),
            "DescribeRegions",
            &params,
            self.deadline,
        );
        let missing = || RegionCheck::Missing(format!("Warning: Region {region} not found"));
        match answer {
            Ok(body) if body.contains(&format!("<regionName>{region}</regionName>")) => {
                RegionCheck::Listed
            }
            Ok(_) => missing(),
            Err(CloudError::Api { code, .. }) if code == "InvalidParameterValue" => missing(),
            Err(e) => RegionCheck::Unverified(format!(
                "Warning: Error in validating region. Exception is {e}"
            )),
        }
    }

    /// `DescribeNetworkInterfaces` for `eni`: the warning when it is not in the region.
    fn check_eni(&self, eni: &str) -> Option<String> {
        let params = [("NetworkInterfaceId.1", eni)];
        let answer = self
            .client
            .call("DescribeNetworkInterfaces", &params, self.deadline);
        let region = self.client.region();
        let missing = format!("Warning: ENI ID {eni} not found in region {region}");
        match answer {
            Ok(body)
                if body.contains(&format!("<networkInterfaceId>{eni}</networkInterfaceId>")) =>
            {
                None
            }
            Ok(_) => Some(missing),
            Err(CloudError::Api { code, .. }) if code.starts_with("InvalidNetworkInterfaceID") => {
                Some(missing)
            }
            Err(e) => Some(format!(
                "Warning: Error in validating ENI ID {eni}. Exception is {e}"
            )),
        }
    }
}

impl RouteTable for Ec2Table {
    fn name(&self) -> String {
        self.table_id.clone()
    }

    /// The first call of an event: role credentials it refuses are fetched again, once.
    fn read(&mut self) -> Result<Vec<Route>, CloudError> {
        let table_id = self.table_id.clone();
        let params = [("RouteTableId.1", table_id.as_str())];
        let body = match self
            .client
            .call("DescribeRouteTables", &params, self.deadline)
        {
            Err(CloudError::Api { code, .. })
                if REFUSED.contains(&code.as_str()) && self.refresh_role()? =>
            {
                self.client
                    .call("DescribeRouteTables", &params, self.deadline)?
            }
            other => other?,
        };
        let routes = parse_route_table(&body, &self.table_id).map_err(|e| {
            CloudError::Transport(format!(
                "AWS at {} answered DescribeRouteTables with XML we cannot read: {e}",
                self.client.endpoint()
            ))
        })?;
        routes.ok_or_else(|| CloudError::TableNotFound(self.table_id.clone()))
    }

    /// The writes go out concurrently (`Ec2Table::replace_all`).
    ///
    /// `ReplaceRoute` has no condition (no etag, no expected next hop), so a conditional write
    /// (`verify`) is sent like any other: on one router the server runs one handler per route
    /// table at a time, and that order is the guarantee that `verify` never undoes a `peerFail`.
    ///
    /// Role credentials EC2 refuses on a write that was the event's first call (a peerFail sent
    /// unread) are fetched again once, and the writes sent again (`ReplaceRoute` is idempotent).
    fn write_all(&mut self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let results = self.replace_all(writes);
        let refused = results.iter().any(
            |r| matches!(r, Err(CloudError::Api { code, .. }) if REFUSED.contains(&code.as_str())),
        );
        if !refused {
            return results;
        }
        match self.refresh_role() {
            Ok(true) => self.replace_all(writes),
            Ok(false) => results,
            Err(e) => writes.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// A peerFail of nodes with a route needs no read: see [`RouteTable::writes_unread`].
    fn writes_unread(&self) -> bool {
        true
    }

    /// The first write sent as `ReplaceRoute` with `DryRun=true`: EC2 checks the caller's IAM
    /// permission and the parameters, changes nothing, and answers `DryRunOperation` where the
    /// call would have succeeded. (Emulators may ignore `DryRun` and write: moto 5.2 does, so
    /// the tests use the fake EC2 for this.)
    fn probe_write(&mut self, writes: &[RouteWrite]) -> Permission {
        let Some(w) = writes.first() else {
            return Permission::Permitted;
        };
        let what = format!("ec2:ReplaceRoute on {}", self.table_id);
        match self.replace_route_with(&w.route, &w.next_hop, &[("DryRun", "true")]) {
            Err(CloudError::Api { code, .. }) if code == "DryRunOperation" => Permission::Permitted,
            Err(CloudError::Api { code, .. }) if code == "UnauthorizedOperation" => {
                Permission::Denied(format!("{what} (UnauthorizedOperation)"))
            }
            Err(e @ CloudError::Api { .. }) => {
                Permission::Denied(format!("{what} would fail: {e}"))
            }
            Err(e) => Permission::NotProven(e.to_string()),
            Ok(()) => {
                log::warn!("AWS answered ReplaceRoute DryRun=true with success: DryRun ignored?");
                Permission::NotProven(format!(
                    "AWS at {} answered a DryRun ReplaceRoute with success instead of DryRunOperation",
                    self.client.endpoint()
                ))
            }
        }
    }
}

impl Ec2Table {
    /// The writes sent concurrently, at most `in_flight` at a time, each retried on throttling
    /// by [`Ec2Client::call`]; results come back in the order of `writes`.
    fn replace_all(&self, writes: &[RouteWrite]) -> Vec<Result<(), CloudError>> {
        let table = self;
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<(), CloudError>>>> =
            writes.iter().map(|_| Mutex::new(None)).collect();
        let work = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(w) = writes.get(i) else { break };
            let result = table.replace_route(&w.route, &w.next_hop);
            *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        };
        std::thread::scope(|scope| {
            for _ in 1..self.in_flight.min(writes.len()) {
                scope.spawn(work);
            }
            work();
        });
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err(CloudError::Local("write not attempted".into())))
            })
            .collect()
    }

    fn replace_route(&self, route: &Route, next_hop: &str) -> Result<(), CloudError> {
        self.replace_route_with(route, next_hop, &[])
    }

    fn replace_route_with(
        &self,
        route: &Route,
        next_hop: &str,
        extra: &[(&str, &str)],
    ) -> Result<(), CloudError> {
        let destination = destination_param(&route.destination);
        let mut params = vec![
            ("RouteTableId", self.table_id.as_str()),
            (destination, route.destination.as_str()),
            ("NetworkInterfaceId", next_hop),
        ];
        params.extend_from_slice(extra);
        let body = self.client.call("ReplaceRoute", &params, self.deadline)?;
        if body.contains("<return>false</return>") {
            return Err(CloudError::Transport(format!(
                "AWS answered ReplaceRoute of {} in {} with return=false: the route was not changed",
                route.destination, self.table_id
            )));
        }
        Ok(())
    }
}

/// The `ReplaceRoute` parameter that names a destination of this form.
fn destination_param(destination: &str) -> &'static str {
    if destination.starts_with("pl-") {
        "DestinationPrefixListId"
    } else if destination.contains(':') {
        "DestinationIpv6CidrBlock"
    } else {
        "DestinationCidrBlock"
    }
}

#[derive(Deserialize)]
struct Items<T> {
    #[serde(rename = "item", default = "Vec::new")]
    item: Vec<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRouteTablesResponse {
    route_table_set: Option<Items<RouteTableXml>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteTableXml {
    route_table_id: String,
    route_set: Option<Items<RouteXml>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteXml {
    destination_cidr_block: Option<String>,
    destination_ipv6_cidr_block: Option<String>,
    destination_prefix_list_id: Option<String>,
    network_interface_id: Option<String>,
}

/// The routes of `table_id` in a `DescribeRouteTablesResponse`; `None` if it is not there.
fn parse_route_table(body: &str, table_id: &str) -> Result<Option<Vec<Route>>, quick_xml::DeError> {
    let response: DescribeRouteTablesResponse = quick_xml::de::from_str(body)?;
    let tables = response.route_table_set.map(|s| s.item).unwrap_or_default();
    let Some(table) = tables.into_iter().find(|t| t.route_table_id == table_id) else {
        return Ok(None);
    };
    let routes = table
        .route_set
        .map(|s| s.item)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let destination = r
                .destination_cidr_block
                .or(r.destination_ipv6_cidr_block)
                .or(r.destination_prefix_list_id)?;
            let destination = destination
                .parse::<Cidr>()
                .map(|c| c.to_string())
                .unwrap_or(destination);
            let next_hop = r.network_interface_id.filter(|eni| !eni.is_empty());
            Some(Route {
                destination,
                next_hop,
                id: String::new(),
                pinned: None,
            })
        })
        .collect();
    Ok(Some(routes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>6f570b0b-9c18-4b07-bdec-73740dcf861a</requestId>
  <routeTableSet>
    <item>
      <routeTableId>rtb-0abc1234</routeTableId>
      <vpcId>vpc-1122aabb</vpcId>
      <ownerId>123456789012</ownerId>
      <routeSet>
        <item><destinationCidrBlock>10.0.0.0/16</destinationCidrBlock><gatewayId>local</gatewayId><state>active</state></item>
        <item><destinationCidrBlock>0.0.0.0/0</destinationCidrBlock><gatewayId>igw-1234abcd</gatewayId><state>active</state></item>
        <item><destinationCidrBlock>10.99.0.0/16</destinationCidrBlock><networkInterfaceId>eni-0aaa1111</networkInterfaceId><instanceOwnerId>1</instanceOwnerId><state>active</state></item>
        <item><destinationIpv6CidrBlock>2001:DB8:0::/56</destinationIpv6CidrBlock><networkInterfaceId>eni-0bbb2222</networkInterfaceId><state>blackhole</state></item>
        <item><destinationPrefixListId>pl-63a5400a</destinationPrefixListId><gatewayId>vpce-1a2b3c4d</gatewayId></item>
      </routeSet>
      <associationSet/>
      <tagSet/>
    </item>
  </routeTableSet>
</DescribeRouteTablesResponse>"#;

    #[test]
    fn describe_route_tables_parses_routes_and_routers() {
        let routes = parse_route_table(DESCRIBED, "rtb-0abc1234")
            .expect("parses")
            .expect("table present");
        let seen: Vec<(&str, Option<&str>)> = routes
            .iter()
            .map(|r| (r.destination.as_str(), r.next_hop.as_deref()))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("10.0.0.0/16", None),
                ("0.0.0.0/0", None),
                ("10.99.0.0/16", Some("eni-0aaa1111")),
                ("2001:db8::/56", Some("eni-0bbb2222")),
                ("pl-63a5400a", None),
            ]
        );
        assert_eq!(
            parse_route_table(DESCRIBED, "rtb-0fff9999").expect("parses"),
            None
        );
        let empty = r#"<DescribeRouteTablesResponse><requestId>1</requestId><routeTableSet/></DescribeRouteTablesResponse>"#;
        assert_eq!(
            parse_route_table(empty, "rtb-0abc1234").expect("parses"),
            None
        );
    }

    #[test]
    fn destinations_pick_their_parameter() {
        assert_eq!(destination_param("10.99.0.0/16"), "DestinationCidrBlock");
        assert_eq!(
            destination_param("2001:db8::/56"),
            "DestinationIpv6CidrBlock"
        );
        assert_eq!(destination_param("pl-63a5400a"), "DestinationPrefixListId");
    }

    #[test]
    fn regions_are_checked_in_their_partitions_first_region() {
        for (region, first) in [
            ("eu-west-1", "us-east-1"),
            ("us-east-1", "us-east-1"),
            ("cn-northwest-1", "cn-north-1"),
            ("us-gov-east-1", "us-gov-west-1"),
        ] {
            assert_eq!(first_region_of_partition(region), first, "{region}");
        }
    }

    #[test]
    fn default_endpoints_follow_the_region() {
        let config = AwsConfig::default();
        assert_eq!(
            config.endpoint_for("eu-west-1"),
            "https://ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            config.endpoint_for("cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
        let config = AwsConfig {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        };
        assert_eq!(config.endpoint_for("eu-west-1"), "http://127.0.0.1:1");
    }
}
