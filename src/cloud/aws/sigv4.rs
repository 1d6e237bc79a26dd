//! AWS Signature Version 4, hand-rolled on `hmac` + `sha2` (the official signer drags in an
//! async runtime for ~40 lines of hashing).
//!
//! ```text
//! canonical request = METHOD \n PATH \n QUERY \n name:value\n... \n signed;names \n hex(sha256(body))
//! string to sign    = AWS4-HMAC-SHA256 \n 20150830T123600Z \n 20150830/<region>/<service>/aws4_request
//!                     \n hex(sha256(canonical request))
//! signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")
//! Authorization     = AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<names>,
//!                     Signature=hex(HMAC(signing key, string to sign))
//! ```
//!
//! The signature is a secret of the same rank as the key for the next few minutes: it is put in
//! the `Authorization` header and nowhere else (no log, no error message).

use std::fmt;
use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::cloud::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// An access key, with the session token that goes with temporary (role) credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl Credentials {
    /// The secret parts, for [`crate::cloud::secret::mask`].
    pub fn secrets(&self) -> Vec<&str> {
        let mut out = vec![self.secret_access_key.expose()];
        out.extend(self.session_token.as_ref().map(Secret::expose));
        out
    }

    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        session_token: Option<&str>,
    ) -> Credentials {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: Secret::new(secret_access_key),
            session_token: session_token.filter(|t| !t.is_empty()).map(Secret::new),
        }
    }
}

/// Shows the key id (it is no secret: CloudTrail and IAM show it) and masks the rest.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .field("session_token", &self.session_token)
            .finish()
    }
}

/// What is signed besides the headers: where the request goes and what it carries.
pub(super) struct Request<'a> {
    pub method: &'a str,
    /// The canonical URI (`/`).
    pub path: &'a str,
    /// The canonical query string (sorted, encoded); empty for the EC2 Query API's POSTs.
    pub query: &'a str,
    /// Headers to sign, any case; `x-amz-date` must be among them.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The credential scope's region and service (`us-east-1`, `ec2`).
pub(super) struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
}

/// The `Authorization` header value for `request`, signed at `amz_date` (`20150830T123600Z`).
pub(super) fn authorization(
    credentials: &Credentials,
    scope: &Scope,
    request: &Request,
    amz_date: &str,
) -> String {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);

    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), collapse_spaces(value)))
        .collect();
    headers.sort();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();

    let canonical_request = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        request.method,
        request.path,
        request.query,
        hex::encode(Sha256::digest(request.body))
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{credential_scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );

    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key.expose()).as_bytes(),
        date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail; the fallback only keeps
    // this function total.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Header values are trimmed and inner runs of spaces collapse to one.
fn collapse_spaces(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `time` as `YYYYMMDDTHHMMSSZ` (UTC), the `X-Amz-Date` form.
pub(super) fn amz_date(time: SystemTime) -> String {
    crate::timestamp::utc(time, crate::timestamp::AMZ_DATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credentials of the AWS Signature Version 4 test suite.
    fn suite_credentials() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
        )
    }

    const SCOPE: Scope<'static> = Scope {
        region: "us-east-1",
        service: "service",
    };

    /// The `Authorization` of a request to `/` at the suite's date.
    fn sign(method: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
        let request = Request {
            method,
            path: "/",
            query: "",
            headers,
            body,
        };
        authorization(&suite_credentials(), &SCOPE, &request, "20150830T123600Z")
    }

    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
    const DATE: (&str, &str) = ("X-Amz-Date", "20150830T123600Z");

    /// `get-vanilla` from the AWS SigV4 test suite.
    #[test]
    fn signs_the_get_vanilla_vector() {
        assert_eq!(
            sign("GET", &[HOST, DATE], b""),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// `post-x-www-form-urlencoded` from the AWS SigV4 test suite: the EC2 Query API's shape.
    #[test]
    fn signs_the_post_form_vector() {
        let form = ("Content-Type", "application/x-www-form-urlencoded");
        assert_eq!(
            sign("POST", &[form, HOST, DATE], b"Param1=value1"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        );
    }

    #[test]
    fn the_session_token_changes_the_signature_when_signed() {
        let signed = sign("GET", &[HOST, DATE, ("X-Amz-Security-Token", "token")], b"");
        assert!(signed.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
        assert_ne!(sign("GET", &[HOST, DATE], b""), signed);
        assert!(!signed.contains("EXAMPLEKEY") && !signed.contains("=token"));
    }

    #[test]
    fn amz_dates_are_utc() {
        assert_eq!(
            amz_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160)),
            "20150830T123600Z"
        );
        assert_eq!(
            amz_date(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400)),
            "20000229T000000Z"
        );
    }
}
