//! What every cloud provider's HTTP needs: an agent with explicit timeouts (ureq 3 has none by
//! default), error bodies kept (4xx/5xx are answers, not transport errors), proxies from the
//! environment for cloud APIs but never for metadata services, and retry pacing bounded by the
//! event's deadline.

use std::time::{Duration, Instant, SystemTime};

/// Connect timeout, overridable by `CSR_HA_HTTP_CONNECT_TIMEOUT_MS`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Whole-request timeout, overridable by `CSR_HA_HTTP_TIMEOUT_MS`.
pub const GLOBAL_TIMEOUT: Duration = Duration::from_secs(5);

fn env_ms(var: &str, default: Duration) -> Duration {
    std::env::var(var)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(default)
}

/// Whether requests go through `HTTPS_PROXY`/`NO_PROXY` (cloud APIs) or straight out
/// (metadata services, which a proxy could never reach).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyUse {
    FromEnv,
    Never,
}

/// An agent with explicit timeouts that hands back 4xx/5xx responses with their bodies.
pub fn agent(proxy: ProxyUse) -> ureq::Agent {
    let proxy = match proxy {
        ProxyUse::FromEnv => ureq::Proxy::try_from_env(),
        ProxyUse::Never => None,
    };
    ureq::Agent::config_builder()
        .timeout_connect(Some(env_ms(
            "CSR_HA_HTTP_CONNECT_TIMEOUT_MS",
            CONNECT_TIMEOUT,
        )))
        .timeout_global(Some(env_ms("CSR_HA_HTTP_TIMEOUT_MS", GLOBAL_TIMEOUT)))
        .http_status_as_error(false)
        .proxy(proxy)
        .build()
        .into()
}

/// The first of `vars` that is set and not empty, else `default`, without a trailing `/`.
pub fn endpoint(vars: &[&str], default: &str) -> String {
    vars.iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

/// RFC 3986 percent-encoding: every byte outside the unreserved set `A-Z a-z 0-9 - _ . ~` and
/// `also_keep` becomes `%XX`. Query and form values (and SigV4's canonical query, which must match
/// byte for byte) keep nothing more; a URL path segment may also keep sub-delimiters like `()`.
pub fn percent_encode(value: &str, also_keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || also_keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How long to wait before retry number `attempt` (0-based): exponential from 100 ms, capped at
/// 2 s, with up to 50 % jitter. `None` when waiting would pass the deadline.
pub fn backoff(attempt: u32, deadline: Instant) -> Option<Duration> {
    let base = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5)))
        .min(Duration::from_secs(2));
    let jitter_nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(jitter_nanos % 500) / 1000.0);
    wait_within(base + jitter, deadline)
}

/// `wait` if sleeping that long still leaves time before `deadline` for one more try.
pub fn wait_within(wait: Duration, deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    (now + wait + Duration::from_millis(50) < deadline).then_some(wait)
}

/// `Retry-After` in seconds (the form ARM and GCP send), if present and sane.
pub fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs.min(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_rfc3986_encoded_keeping_only_what_is_asked() {
        assert_eq!(
            percent_encode("2001:db8::/64", b""),
            "2001%3Adb8%3A%3A%2F64"
        );
        assert_eq!(percent_encode("a b~c*", b""), "a%20b~c%2A");
        assert_eq!(percent_encode("(x)", b"()"), "(x)");
    }

    #[test]
    fn backoff_grows_and_respects_the_deadline() {
        let far = Instant::now() + Duration::from_secs(60);
        let first = backoff(0, far).expect("first retry fits");
        let fourth = backoff(3, far).expect("fourth retry fits");
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(151));
        assert!(fourth >= Duration::from_millis(800));
        assert_eq!(
            backoff(0, Instant::now() + Duration::from_millis(100)),
            None
        );
    }
}
