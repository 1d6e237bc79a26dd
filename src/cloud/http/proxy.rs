//! Which proxy a cloud API call goes through, read from the environment as curl and `requests`
//! read it: the first of `ALL_PROXY`, `HTTPS_PROXY`, `HTTP_PROXY` (either letter case) that is
//! set and not empty, except for the hosts `NO_PROXY`/`no_proxy` lists.
//!
//! A proxy variable that is set is obeyed or refused, never ignored: a value that is not a URL,
//! or names a scheme this build cannot speak, fails every call at once naming the variable —
//! going direct instead would bypass the proxy a site requires. This build speaks HTTP
//! `CONNECT` to `http://` and `https://` proxies. ureq 3 has SOCKS4/5 behind its
//! `socks-proxy` feature, which this build does not enable (one more crate, and nothing here to
//! test it against), so `socks*://` is refused with that said.

use std::fmt;

use ureq::{Proxy, ProxyProtocol};

/// The variables that may name a proxy, in the order they are read.
pub const VARIABLES: [&str; 6] = [
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
];

/// The proxy the environment names: the variable, the proxy as messages show it (no user or
/// password), and ureq's setting with the `NO_PROXY` list.
#[derive(Debug, Clone)]
pub struct ProxySetting {
    pub variable: &'static str,
    /// `http://proxy.example:3128`.
    pub shown: String,
    /// `proxy.example:3128`, the host a connection failure is about.
    pub host_port: String,
    pub proxy: Proxy,
}

impl fmt::Display for ProxySetting {
    /// `proxy http://127.0.0.1:3128 (HTTPS_PROXY)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy {} ({})", self.shown, self.variable)
    }
}

impl ProxySetting {
    /// Whether a request to `url` goes through the proxy (`NO_PROXY` does not list its host).
    pub fn applies_to(&self, url: &str) -> bool {
        url.parse::<ureq::http::Uri>()
            .map(|uri| !self.proxy.is_no_proxy(&uri))
            .unwrap_or(true)
    }
}

/// The proxy `lookup` names (`None`: no variable set, calls go direct), or why the one it names
/// cannot be used: `HTTPS_PROXY=socks5://…: SOCKS proxies are not supported …`.
pub fn from_env(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<ProxySetting>, String> {
    let Some((variable, value)) = VARIABLES.iter().find_map(|&variable| {
        let value = lookup(variable)?;
        let value = value.trim().to_string();
        (!value.is_empty()).then_some((variable, value))
    }) else {
        return Ok(None);
    };
    let refused = |why: &str| format!("{variable}={}: {why}", without_userinfo(&value));
    let parsed = Proxy::new(&value).map_err(|_| {
        refused("is not a proxy URL; set it as http://host:port (or unset it to connect directly)")
    })?;
    match parsed.protocol() {
        ProxyProtocol::Http | ProxyProtocol::Https => {}
        other => {
            return Err(refused(&format!(
                "{other} proxies are not supported by this build (it speaks HTTP CONNECT to \
                 http:// and https:// proxies); name an HTTP proxy, or unset it to connect \
                 directly"
            )))
        }
    }
    let scheme = match parsed.protocol() {
        ProxyProtocol::Https => "https",
        _ => "http",
    };
    let host_port = format!("{}:{}", parsed.host(), parsed.port());
    let mut builder = Proxy::builder(parsed.protocol())
        .host(parsed.host())
        .port(parsed.port());
    if let Some(user) = parsed.username() {
        builder = builder.username(user);
    }
    if let Some(password) = parsed.password() {
        builder = builder.password(password);
    }
    let no_proxy = lookup("NO_PROXY").or_else(|| lookup("no_proxy"));
    for entry in no_proxy.iter().flat_map(|list| list.split(',')) {
        builder = builder.no_proxy(entry.trim());
    }
    let proxy = builder.build().map_err(|e| refused(&e.to_string()))?;
    Ok(Some(ProxySetting {
        variable,
        shown: format!("{scheme}://{host_port}"),
        host_port,
        proxy,
    }))
}

/// `http://user:secret@proxy:3128` as `http://****@proxy:3128`: a proxy's password never
/// reaches a message.
fn without_userinfo(value: &str) -> String {
    let start = value.find("://").map_or(0, |i| i + 3);
    match value[start..].rfind('@') {
        Some(at) => format!("{}****{}", &value[..start], &value[start + at..]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<ProxySetting>, String> {
        from_env(&|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn the_first_variable_set_is_the_proxy_and_no_proxy_lists_the_exceptions() {
        assert!(from(&[]).expect("none").is_none());
        let proxy = from(&[
            ("HTTP_PROXY", "http://other:1"),
            ("https_proxy", "http://user:pw@127.0.0.1:3128"),
            ("ALL_PROXY", " "),
            ("NO_PROXY", "localhost, .internal.example"),
        ])
        .expect("usable")
        .expect("set");
        assert_eq!(
            proxy.to_string(),
            "proxy http://127.0.0.1:3128 (https_proxy)"
        );
        assert!(proxy.applies_to("https://ec2.us-east-1.amazonaws.com/"));
        assert!(!proxy.applies_to("https://api.internal.example/x"));
        assert!(!proxy.applies_to("http://localhost:9/"));
    }

    #[test]
    fn an_unusable_proxy_is_refused_naming_the_variable_never_ignored() {
        let err = from(&[("HTTPS_PROXY", "socks5://127.0.0.1:1080")]).expect_err("socks");
        assert!(
            err.starts_with(
                "HTTPS_PROXY=socks5://127.0.0.1:1080: SOCKS5 proxies are not supported by this build"
            ),
            "{err}"
        );
        let err = from(&[("https_proxy", "http://[::1")]).expect_err("not a URL");
        assert!(
            err.starts_with("https_proxy=http://[::1: is not a proxy URL"),
            "{err}"
        );
        let err = from(&[("ALL_PROXY", "ftp://u:secret@proxy:21")]).expect_err("ftp");
        assert!(
            err.starts_with("ALL_PROXY=ftp://****@proxy:21: ") && !err.contains("secret"),
            "{err}"
        );
    }
}
