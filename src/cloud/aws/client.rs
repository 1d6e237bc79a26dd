//! The EC2 Query API: one signed form POST per call, XML back.
//!
//! ```text
//! POST / HTTP/1.1
//! Host: ec2.us-east-1.amazonaws.com
//! Content-Type: application/x-www-form-urlencoded; charset=utf-8
//! X-Amz-Date: 20261124T191500Z
//! X-Amz-Security-Token: ...                     (role credentials only)
//! Authorization: AWS4-HMAC-SHA256 Credential=AKIA.../20261124/us-east-1/ec2/aws4_request, ...
//!
//! Action=DescribeRouteTables&RouteTableId.1=rtb-0abc1234&Version=2016-11-15
//! ```
//!
//! Errors come back as
//! `<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>..</Response>`
//! (IAM and STS use `<ErrorResponse><Error>..`). Throttling (`RequestLimitExceeded`), 5xx and
//! connection failures are retried with backoff until the event's deadline; anything else is
//! handed back at once with AWS's code and message.

use std::time::{Instant, SystemTime};

use serde::Deserialize;

use super::sigv4::{self, amz_date, Credentials};
use crate::cloud::http::{self, Client, Method, Reply};
use crate::cloud::CloudError;
use crate::percent;

/// The EC2 API version every EC2 call names.
pub(super) const EC2_VERSION: &str = "2016-11-15";

/// Error codes that mean "slow down or try again", whatever the HTTP status.
const RETRY_CODES: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "Unavailable",
];

/// One Query API endpoint: where requests go, and the region, service and version they are
/// signed and sent for (`ec2`, `2016-11-15`).
pub(super) struct QueryApi {
    endpoint: String,
    host: String,
    path: String,
    region: String,
    service: &'static str,
    version: &'static str,
}

impl QueryApi {
    /// `endpoint` (`https://ec2.us-east-1.amazonaws.com`) for `service` in `region`.
    pub(super) fn new(
        endpoint: &str,
        region: &str,
        service: &'static str,
        version: &'static str,
    ) -> Result<QueryApi, CloudError> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let bad = |why: &str| {
            CloudError::Local(format!("AWS endpoint {endpoint:?} is not usable: {why}"))
        };
        let uri: ureq::http::Uri = endpoint.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri
            .scheme_str()
            .ok_or_else(|| bad("no http:// or https://"))?;
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => return Err(bad("scheme must be http or https")),
        };
        let host = match uri.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        let path = match uri.path() {
            "" => "/".to_string(),
            p => p.to_string(),
        };
        Ok(QueryApi {
            endpoint,
            host,
            path,
            region: region.to_string(),
            service,
            version,
        })
    }

    pub(super) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(super) fn region(&self) -> &str {
        &self.region
    }

    /// Calls `action` with `params`, signed with `credentials`, through `http`, and returns the
    /// response body, retrying throttling, 5xx and connection errors until `deadline`
    /// ([`http::Client::send`]). No secret is in an error it answers.
    pub(super) fn call(
        &self,
        http: &Client,
        credentials: &Credentials,
        action: &str,
        params: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<String, CloudError> {
        let mut fields = vec![("Action", action), ("Version", self.version)];
        fields.extend_from_slice(params);
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    percent::encode(k, percent::UNRESERVED),
                    percent::encode(v, percent::UNRESERVED)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        // Signed once: a signature stays valid for minutes, longer than any event's retries.
        let date = amz_date(SystemTime::now());
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let mut headers = vec![
            ("content-type", content_type),
            ("host", self.host.as_str()),
            ("x-amz-date", date.as_str()),
        ];
        if let Some(token) = &credentials.session_token {
            headers.push(("x-amz-security-token", token.expose()));
        }
        let request = sigv4::Request {
            method: "POST",
            path: &self.path,
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let scope = sigv4::Scope {
            region: &self.region,
            service: self.service,
        };
        let authorization = sigv4::authorization(credentials, &scope, &request, &date);
        let throttled = |reply: &Reply| {
            parse_error(reply.status, &reply.body)
                .is_some_and(|(code, _)| RETRY_CODES.contains(&code.as_str()))
        };
        let mut request = http::Request::new(Method::Post, &self.endpoint)
            .retry_if(&throttled)
            .body(body.clone());
        for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
            request = request.header(name, *value);
        }
        for secret in credentials.secrets() {
            request = request.secret(secret);
        }
        let request = request.secret_header("authorization", authorization);
        let masked = |e: CloudError| e.masked(&credentials.secrets());
        let reply = http.send(&request, deadline).map_err(|e| {
            masked(CloudError::Transport(
                e.reaching(&format!("AWS at {}", self.endpoint)),
            ))
        })?;
        if reply.is_success() {
            return Ok(reply.body);
        }
        log::debug!("AWS {action}: HTTP {}", reply.status);
        Err(masked(reply.error("AWS", parse_error)))
    }
}

/// A signed client of EC2's Query API for one region, owning its HTTP client.
pub struct Ec2Client {
    http: Client,
    api: QueryApi,
    credentials: Credentials,
}

impl Ec2Client {
    /// A client of `endpoint` (`https://ec2.us-east-1.amazonaws.com`) signing for `region`,
    /// sending through `http` (`Client::new(Service::Aws)`: the CA bundle, proxy and timeouts
    /// of the environment).
    pub fn new(
        http: Client,
        endpoint: &str,
        region: &str,
        credentials: Credentials,
    ) -> Result<Ec2Client, CloudError> {
        Ok(Ec2Client {
            http,
            api: QueryApi::new(endpoint, region, "ec2", EC2_VERSION)?,
            credentials,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.api.endpoint()
    }

    /// HTTP requests sent so far, retries included.
    pub fn calls(&self) -> u32 {
        self.http.requests()
    }

    /// Calls `action` with `params` and returns the response body, retrying throttling, 5xx and
    /// connection errors until `deadline` ([`http::Client::send`]).
    pub fn call(
        &self,
        action: &str,
        params: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<String, CloudError> {
        self.api
            .call(&self.http, &self.credentials, action, params, deadline)
    }

    /// The HTTP client, for the other calls of the same event (STS, `DescribeRegions`).
    pub(super) fn http(&self) -> &Client {
        &self.http
    }

    pub(super) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub(super) fn region(&self) -> &str {
        self.api.region()
    }

    /// Signs from now on with `credentials` (fetched again after EC2 refused the old ones).
    pub(super) fn use_credentials(&mut self, credentials: Credentials) {
        self.credentials = credentials;
    }
}

#[derive(Deserialize)]
struct ErrorXml {
    #[serde(rename = "Code", default)]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
}

#[derive(Deserialize)]
struct ErrorsXml {
    #[serde(rename = "Error", default)]
    error: Vec<ErrorXml>,
}

/// EC2: `<Response><Errors><Error>..`.
#[derive(Deserialize)]
struct Ec2ErrorResponse {
    #[serde(rename = "Errors")]
    errors: ErrorsXml,
}

/// IAM, STS: `<ErrorResponse><Error>..`.
#[derive(Deserialize)]
struct QueryErrorResponse {
    #[serde(rename = "Error")]
    error: ErrorXml,
}

/// AWS's code and message in an error body (EC2's `<Response><Errors><Error>`, IAM's and STS's
/// `<ErrorResponse><Error>`); `None` if the body is not AWS's (a proxy's error page, say).
fn parse_error(_status: u16, body: &str) -> Option<(String, String)> {
    quick_xml::de::from_str::<Ec2ErrorResponse>(body)
        .ok()
        .and_then(|r| r.errors.error.into_iter().next())
        .or_else(|| {
            quick_xml::de::from_str::<QueryErrorResponse>(body)
                .ok()
                .map(|r| r.error)
        })
        .filter(|e| !e.code.is_empty())
        .map(|e| (e.code, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> Reply {
        Reply::for_test(status, body)
    }

    #[test]
    fn ec2_errors_become_code_and_message() {
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidRouteTableID.NotFound</Code>\
                    <Message>The routeTable ID 'rtb-0abc1234' does not exist</Message></Error></Errors>\
                    <RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>";
        let error = reply(400, body).error("AWS", parse_error);
        assert_eq!(
            error.to_string(),
            "AWS InvalidRouteTableID.NotFound: The routeTable ID 'rtb-0abc1234' does not exist"
        );
        assert!(matches!(
            error,
            CloudError::Api {
                status: Some(400),
                ..
            }
        ));
        let iam = "<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>Sender</Type>\
                   <Code>AccessDenied</Code><Message>nope</Message></Error><RequestId>1</RequestId></ErrorResponse>";
        assert_eq!(
            reply(403, iam).error("AWS", parse_error).to_string(),
            "AWS AccessDenied: nope"
        );
        let html = reply(502, "<html><body>Bad   Gateway</body></html>").error("AWS", parse_error);
        assert_eq!(
            html.to_string(),
            "AWS HTTP502: HTTP status 502: <html><body>Bad Gateway</body></html>"
        );
    }

    #[test]
    fn endpoints_give_the_signed_host() {
        let c = QueryApi::new("http://127.0.0.1:5000/", "us-east-1", "ec2", EC2_VERSION)
            .expect("valid");
        assert_eq!(
            (c.host.as_str(), c.path.as_str(), c.endpoint()),
            ("127.0.0.1:5000", "/", "http://127.0.0.1:5000")
        );
        let c = QueryApi::new(
            "https://ec2.eu-west-1.amazonaws.com:443",
            "eu-west-1",
            "ec2",
            EC2_VERSION,
        )
        .expect("valid");
        assert_eq!(c.host, "ec2.eu-west-1.amazonaws.com");
        assert!(QueryApi::new("ec2.example", "us-east-1", "ec2", EC2_VERSION).is_err());
    }
}
