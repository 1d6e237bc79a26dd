//! The fake's ARM side: route table and route GETs, route and table PUTs with etags and
//! `If-Match`, the long-running operations a write may turn into, and the permissions list.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::spec::{spec, Spec};
use super::{answer, arm_error, query, Answer, FakeRoute, Op, Seen, State, Writes, GROUP, SUB};

/// The api-version of Permissions - List For Resource.
const PERMISSIONS_API_VERSION: &str = "2022-04-01";

impl State {
    pub(super) fn arm(&mut self, req: &Seen, path: &str) -> Answer {
        let bearer = req
            .header("Authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if bearer != self.imds_token && !(self.app.is_some() && bearer == self.app_token) {
            return arm_error(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            );
        }
        if req.header("Accept") != Some("application/json") {
            return arm_error(
                400,
                "UnsupportedAcceptHeader",
                &format!(
                    "The fake expects exactly 'Accept: application/json' (the SDK's), got {:?}.",
                    req.header("Accept")
                ),
            );
        }
        if let Some(rejected) = self.against_description(req, path) {
            return rejected;
        }
        if !query(&req.url).contains_key("api-version") {
            return arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            );
        }
        if self.throttle > 0 {
            self.throttle -= 1;
            return retry_after_1s(arm_error(
                429,
                "SubscriptionRequestsThrottled",
                &format!("Number of 'read' requests for subscription '{SUB}' exceeded. Please try again after '1' seconds."),
            ));
        }
        if self.server_errors > 0 {
            self.server_errors -= 1;
            return arm_error(
                500,
                "InternalServerError",
                "Encountered internal server error.",
            );
        }
        let lower = path.to_ascii_lowercase();
        if let Some(id) = lower
            .rsplit_once("/operations/")
            .map(|(_, id)| id.to_string())
        {
            return self.poll(&id, false);
        }
        if let Some(id) = lower
            .rsplit_once("/operationresults/")
            .map(|(_, id)| id.to_string())
        {
            return self.poll(&id, true);
        }
        if let Some(table) = path.strip_suffix("/providers/Microsoft.Authorization/permissions") {
            return self.permissions(req, table);
        }
        match (req.method.as_str(), lower.split_once("/routes/")) {
            ("GET", Some((table, name))) => {
                let name = path[path.len() - name.len()..].to_string();
                self.get_route(table, &name)
            }
            ("GET", None) => {
                let answer = self.get_table(path);
                if let Some((table, route, ip)) = self.change_after_read.take() {
                    let mut changed = self
                        .tables
                        .get(&table)
                        .and_then(|routes| routes.iter().find(|r| r.name == route).cloned())
                        .expect("change_after_read names an existing route");
                    changed.hop_ip = Some(ip);
                    self.apply(&table, changed);
                }
                answer
            }
            ("PUT", None) => self.put_table(req, path),
            ("PUT", Some((table, name))) => {
                let name = path[path.len() - name.len()..].to_string();
                let key = format!("{table}/routes/{}", name.to_ascii_lowercase());
                if let Some(expected) = req.header("If-Match") {
                    if expected != self.etag(&key) {
                        return precondition_failed();
                    }
                }
                self.put_route(table, &name, &req.body)
            }
            _ => arm_error(
                400,
                "InvalidRequest",
                &format!("{} {path} is not supported by the fake", req.method),
            ),
        }
    }

    /// Why the request is not one Azure's description defines, as ARM's 400; `None` if it is,
    /// or if it is not a `Microsoft.Network` route table request (operations, permissions), or
    /// if there are no descriptions to check against ([`crate::api_descriptions`]).
    fn against_description(&self, req: &Seen, path: &str) -> Option<Answer> {
        let spec = spec()?;
        if !Spec::covers(path) || path.ends_with("/providers/Microsoft.Authorization/permissions") {
            return None;
        }
        let q = query(&req.url);
        let checked = spec.check(
            &req.method,
            path,
            q.get("api-version").map(String::as_str),
            &req.body,
        );
        checked.err().map(|reason| {
            arm_error(
                400,
                "InvalidRequestContent",
                &format!(
                    "The request is not valid for Microsoft.Network {}: {reason}.",
                    spec.api_version()
                ),
            )
        })
    }

    /// Permissions - List For Resource, as configured in [`State::permissions`].
    fn permissions(&self, req: &Seen, table: &str) -> Answer {
        let version = query(&req.url).get("api-version").cloned();
        if req.method != "GET" || version.as_deref() != Some(PERMISSIONS_API_VERSION) {
            return arm_error(
                400,
                "InvalidApiVersionParameter",
                &format!("Permissions - List For Resource is GET with api-version {PERMISSIONS_API_VERSION}, not {} with {version:?}.", req.method),
            );
        }
        match self.permissions_refused {
            Some(403) => arm_error(403, "AuthorizationFailed", &format!("The client does not have authorization to perform action 'Microsoft.Authorization/permissions/read' over scope '{table}' or the scope is invalid.")),
            Some(status) => arm_error(status, "PermissionsUnavailable", "The permissions of this scope cannot be listed."),
            None => answer(200, json!({ "value": self.permissions })),
        }
    }

    /// Routes - Get.
    fn get_route(&mut self, table: &str, name: &str) -> Answer {
        let key = format!("{table}/routes/{}", name.to_ascii_lowercase());
        let state = self.resource_state(table);
        let Some(route) = self
            .tables
            .get(table)
            .and_then(|routes| routes.iter().find(|r| r.name.eq_ignore_ascii_case(name)))
        else {
            return arm_error(
                404,
                "NotFound",
                &format!("Resource {table}/routes/{name} not found."),
            );
        };
        let mut json = route.to_json(table, &self.etag(&key));
        let retry_after = self.state_retry_after(&state);
        if let Some(state) = state {
            json["properties"]["provisioningState"] = json!(state);
        }
        with_retry_after(answer(200, json), retry_after)
    }

    /// A state-only write on `table` in progress: counts this read of it and says the state it
    /// reads with (`Updating` for the first polls, then the end, the write applied if it
    /// succeeded). `None` when no such write is in progress.
    fn resource_state(&mut self, table: &str) -> Option<String> {
        let Writes::StateOnly { polls, end, .. } = self.writes else {
            return None;
        };
        let op = self
            .ops
            .values_mut()
            .find(|op| op.state_only && op.table == table)?;
        op.polls += 1;
        if op.polls <= polls {
            return Some("Updating".into());
        }
        let routes = op.routes.clone();
        op.table = format!("done:{table}");
        if end == "Succeeded" {
            for route in routes {
                self.apply(table, route);
            }
        }
        Some(end.to_string())
    }

    fn state_retry_after(&self, state: &Option<String>) -> Option<u32> {
        match (self.writes, state.as_deref()) {
            (Writes::StateOnly { retry_after, .. }, Some("Updating")) => retry_after,
            _ => None,
        }
    }

    fn get_table(&mut self, path: &str) -> Answer {
        let lower = path.to_ascii_lowercase();
        if let Some(body) = self.verbatim.get(&lower) {
            return Answer {
                status: 200,
                body: body.clone(),
                headers: Vec::new(),
            };
        }
        let state = self.resource_state(&lower);
        let retry_after = self.state_retry_after(&state);
        let mut answer = self.table_json(path);
        if let (Some(state), 200) = (state, answer.status) {
            let mut json: Value = serde_json::from_str(&answer.body).unwrap_or_default();
            json["properties"]["provisioningState"] = json!(state);
            answer.body = json.to_string();
        }
        with_retry_after(answer, retry_after)
    }

    fn table_json(&self, path: &str) -> Answer {
        let name = path.rsplit('/').next().unwrap_or("");
        match self.tables.get(&path.to_ascii_lowercase()) {
            None => arm_error(
                404,
                "ResourceNotFound",
                &format!("The Resource 'Microsoft.Network/routeTables/{name}' under resource group '{GROUP}' was not found."),
            ),
            Some(routes) => answer(
                200,
                json!({
                    "name": name,
                    "id": path,
                    "etag": self.etag(&path.to_ascii_lowercase()),
                    "type": "Microsoft.Network/routeTables",
                    "location": "westeurope",
                    "tags": {"owner": "csr-ha-test"},
                    "properties": {
                        "provisioningState": "Succeeded",
                        "disableBgpRoutePropagation": false,
                        "routes": routes.iter().map(|r| {
                            let key = format!("{}/routes/{}", path.to_ascii_lowercase(), r.name.to_ascii_lowercase());
                            r.to_json(path, &self.etag(&key))
                        }).collect::<Vec<_>>(),
                    }
                }),
            ),
        }
    }

    fn put_route(&mut self, table: &str, name: &str, body: &str) -> Answer {
        let Some(routes) = self.tables.get(table) else {
            return arm_error(404, "ParentResourceNotFound", "Can not perform requested operation on nested resource. Parent resource not found.");
        };
        if self.deny_writes {
            return arm_error(
                403,
                "AuthorizationFailed",
                &format!("The client '55555555-6666-7777-8888-999999999999' with object id '55555555-6666-7777-8888-999999999999' does not have authorization to perform action 'Microsoft.Network/routeTables/routes/write' over scope '{table}/routes/{name}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
            );
        }
        if self.busy > 0 || self.ops.values().any(|op| op.table == table) {
            self.busy = self.busy.saturating_sub(1);
            return retry_after_1s(arm_error(
                409,
                "AnotherOperationInProgress",
                &format!("Another operation on this or dependent resource is in progress. To retry later, please wait for the operation to complete. Resource: {table}"),
            ));
        }
        let parsed: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return arm_error(
                    400,
                    "InvalidRequestContent",
                    &format!("The request content was invalid: {e}"),
                )
            }
        };
        let route = match parse_route(name, &parsed["properties"]) {
            Ok(route) => route,
            Err(answer) => return answer,
        };
        let exists = routes.iter().any(|r| r.name == name);
        let status = if exists { 200 } else { 201 };
        let mut json = route.to_json(table, "W/\"pending\"");
        match self.writes {
            Writes::Immediate => {
                self.apply(table, route);
                answer(status, json)
            }
            Writes::AzureAsync | Writes::Location => {
                let id = self.start_op(table, vec![route]);
                json["properties"]["provisioningState"] = json!("Updating");
                self.long_running(id, status, json)
            }
            Writes::StateOnly { .. } => {
                self.start_op(table, vec![route]);
                json["properties"]["provisioningState"] = json!("Updating");
                answer(status, json)
            }
        }
    }

    /// A long-running write of `routes` to `table`; it completes on its second poll.
    fn start_op(&mut self, table: &str, routes: Vec<FakeRoute>) -> u32 {
        let id = self.next_op;
        self.next_op += 1;
        self.ops.insert(
            id,
            Op {
                table: table.to_string(),
                routes,
                polls: 0,
                fail: self.fail_operations,
                state_only: matches!(self.writes, Writes::StateOnly { .. }),
            },
        );
        id
    }

    /// The answer to a write that completes later: `Azure-AsyncOperation`, or 202 + `Location`.
    fn long_running(&self, id: u32, status: u16, json: Value) -> Answer {
        let ops = format!(
            "{}/subscriptions/{SUB}/providers/Microsoft.Network/locations/westeurope",
            self.arm_base
        );
        if self.writes == Writes::AzureAsync {
            let mut a = answer(status, json);
            a.headers.push((
                "Azure-AsyncOperation".into(),
                format!("{ops}/operations/{id}?api-version=2024-05-01"),
            ));
            a
        } else {
            let mut a = answer(202, json!(null));
            a.body = String::new();
            a.headers.push((
                "Location".into(),
                format!("{ops}/operationResults/{id}?api-version=2024-05-01"),
            ));
            a
        }
    }

    /// Route Tables - Create Or Update: the body's routes replace the table's.
    fn put_table(&mut self, req: &Seen, path: &str) -> Answer {
        let table = path.to_ascii_lowercase();
        if !self.tables.contains_key(&table) {
            return arm_error(404, "ResourceNotFound", "The route table was not found.");
        }
        if let Some(expected) = req.header("If-Match") {
            if expected != self.etag(&table) {
                return precondition_failed();
            }
        }
        if self.deny_writes {
            return arm_error(
                403,
                "AuthorizationFailed",
                &format!("The client does not have authorization to perform action 'Microsoft.Network/routeTables/write' over scope '{table}'."),
            );
        }
        let parsed: Value = match serde_json::from_str(&req.body) {
            Ok(v) => v,
            Err(e) => return arm_error(400, "InvalidRequestContent", &format!("{e}")),
        };
        if parsed["location"].as_str().is_none() {
            return arm_error(
                400,
                "LocationRequired",
                "The location property is required.",
            );
        }
        let Some(routes) = parsed["properties"]["routes"].as_array() else {
            return arm_error(
                400,
                "InvalidRequestFormat",
                "properties.routes is required.",
            );
        };
        let mut new = Vec::new();
        for r in routes {
            match parse_route(r["name"].as_str().unwrap_or_default(), &r["properties"]) {
                Ok(route) => new.push(route),
                Err(answer) => return answer,
            }
        }
        let changed: Vec<FakeRoute> = new
            .into_iter()
            .filter(|r| self.tables[&table].iter().all(|old| old != r))
            .collect();
        match self.writes {
            Writes::Immediate => {
                for r in changed {
                    self.apply(&table, r);
                }
                self.table_json(path)
            }
            Writes::AzureAsync | Writes::Location => {
                let id = self.start_op(&table, changed);
                let json = self.table_json(path).body;
                let json = serde_json::from_str(&json).unwrap_or(Value::Null);
                self.long_running(id, 200, json)
            }
            Writes::StateOnly { .. } => {
                let json = self.table_json(path).body;
                let mut json: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
                self.start_op(&table, changed);
                json["properties"]["provisioningState"] = json!("Updating");
                answer(200, json)
            }
        }
    }

    /// The etag of a route or table: its write count.
    fn etag(&self, key: &str) -> String {
        format!("W/\"{}\"", self.versions.get(key).copied().unwrap_or(0))
    }

    fn apply(&mut self, table: &str, route: FakeRoute) {
        let key = format!("{table}/routes/{}", route.name.to_ascii_lowercase());
        *self.versions.entry(key).or_default() += 1;
        *self.versions.entry(table.to_string()).or_default() += 1;
        if let Some(routes) = self.tables.get_mut(table) {
            match routes.iter_mut().find(|r| r.name == route.name) {
                Some(r) => *r = route,
                None => routes.push(route),
            }
        }
    }

    /// How many times each finished operation was polled, by id.
    pub fn polls(&self) -> BTreeMap<u32, u32> {
        self.ops.iter().map(|(id, op)| (*id, op.polls)).collect()
    }

    fn poll(&mut self, id: &str, location: bool) -> Answer {
        let Some(op) = id.parse::<u32>().ok().and_then(|id| self.ops.get_mut(&id)) else {
            return arm_error(
                404,
                "OperationNotFound",
                &format!("Operation {id} not found."),
            );
        };
        op.polls += 1;
        if op.polls < 2 {
            return if location {
                empty(202)
            } else {
                answer(200, json!({"status": "InProgress"}))
            };
        }
        let (table, routes, fail) = (op.table.clone(), op.routes.clone(), op.fail);
        // Finished operations stay for `polls()` but no longer block the table.
        op.table = format!("done:{table}");
        if fail {
            return if location {
                arm_error(
                    400,
                    "RouteConflict",
                    "Route conflicts with a route of the virtual network.",
                )
            } else {
                answer(
                    200,
                    json!({"status": "Failed", "error": {"code": "RouteConflict", "message": "Route conflicts with a route of the virtual network."}}),
                )
            };
        }
        for route in routes {
            self.apply(&table, route);
        }
        if location {
            empty(200)
        } else {
            answer(200, json!({"status": "Succeeded"}))
        }
    }
}

/// A route's `properties` as a route PUT or a table PUT sends them, checked as ARM does.
fn parse_route(name: &str, props: &Value) -> Result<FakeRoute, Answer> {
    let (Some(prefix), Some(hop_type)) = (
        props["addressPrefix"].as_str(),
        props["nextHopType"].as_str(),
    ) else {
        return Err(arm_error(
            400,
            "InvalidRequestFormat",
            "addressPrefix and nextHopType are required.",
        ));
    };
    let hop_ip = props["nextHopIpAddress"].as_str().map(str::to_string);
    if hop_type == "VirtualAppliance"
        && hop_ip
            .as_deref()
            .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
            .is_none()
    {
        return Err(arm_error(
            400,
            "InvalidRouteNextHopIpAddress",
            "nextHopIpAddress must be an IP address for VirtualAppliance.",
        ));
    }
    Ok(FakeRoute {
        name: name.to_string(),
        prefix: prefix.to_string(),
        hop_type: hop_type.to_string(),
        hop_ip,
    })
}

/// ARM's answer to an `If-Match` whose etag is no longer the resource's.
fn precondition_failed() -> Answer {
    arm_error(
        412,
        "PreconditionFailed",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
}

/// `answer` with `Retry-After: 1`, as ARM sends with throttling and busy tables.
fn retry_after_1s(mut answer: Answer) -> Answer {
    answer.headers.push(("Retry-After".into(), "1".into()));
    answer
}

fn with_retry_after(mut answer: Answer, seconds: Option<u32>) -> Answer {
    if let Some(seconds) = seconds {
        answer
            .headers
            .push(("Retry-After".into(), seconds.to_string()));
    }
    answer
}

/// A bodiless answer, as a `Location` poll gets.
fn empty(status: u16) -> Answer {
    Answer {
        status,
        body: String::new(),
        headers: vec![],
    }
}
