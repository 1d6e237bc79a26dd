//! Why a request got no answer, and whether another try could change that.
//!
//! A certificate the roots do not trust stays untrusted, and a host name that does not resolve
//! stays unknown, for the whole of an event: trying again only spends the deadline (a peerFail
//! took 25.7 s to report an untrusted certificate after 14 tries). Those are permanent, and
//! their message says what to set. Refused or reset connections, timeouts and a resolver that
//! is briefly down are transient, and retried.

use std::io;

use super::proxy::ProxySetting;
use super::system_roots::Roots;
use super::trust;
use super::{SendError, Service};

/// One try's failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub cause: String,
    pub permanent: bool,
    /// No answer came within the request's timeout (connect or whole request).
    pub timed_out: bool,
}

impl Failure {
    pub fn transient(cause: impl Into<String>) -> Failure {
        Failure {
            cause: cause.into(),
            permanent: false,
            timed_out: false,
        }
    }

    fn permanent(cause: String) -> Failure {
        Failure {
            cause,
            permanent: true,
            timed_out: false,
        }
    }

    /// The error of the request's last try, `tries` in all.
    pub fn after(self, tries: u32) -> SendError {
        SendError {
            cause: self.cause,
            tries,
            permanent: self.permanent,
            timed_out: self.timed_out,
        }
    }

    /// `error` from a request to `host` for `service`, whose certificates were checked against
    /// `roots`, sent `via` a proxy or directly. Through a proxy
    /// every connection is the proxy's, so a failure to connect names it and its variable (`via
    /// proxy http://127.0.0.1:1 (HTTPS_PROXY): Connection refused`), and a proxy host that does
    /// not resolve is permanent, as an API host that does not resolve is.
    pub fn of(
        error: &ureq::Error,
        host: &str,
        service: Service,
        roots: &Roots,
        via: Option<&ProxySetting>,
    ) -> Failure {
        if let Some(tls) = rustls_error(error) {
            return Failure::permanent(tls_message(tls, host, service, roots));
        }
        let Some(proxy) = via else {
            return Failure::connecting(error, host, "the endpoint");
        };
        let failure = match error {
            ureq::Error::ConnectProxyFailed(why) => Failure::proxy_answered(why),
            _ => Failure::connecting(error, &proxy.host_port, proxy.variable),
        };
        Failure {
            cause: format!("via {proxy}: {}", failure.cause),
            ..failure
        }
    }

    /// The proxy answered `CONNECT` with an error: its refusal (403, 407: access or credentials)
    /// stays; anything else (502, 503, no answer) may mend.
    fn proxy_answered(why: &str) -> Failure {
        let refused = ["responded 403", "responded 407"]
            .iter()
            .any(|code| why.contains(code));
        let cause = format!("CONNECT refused: {why}");
        if refused {
            Failure::permanent(format!(
                "{cause}; check the proxy's credentials and access list"
            ))
        } else {
            Failure::transient(cause)
        }
    }

    /// A failure to connect to (or talk with) `host`, whose name `check` says where to fix.
    fn connecting(error: &ureq::Error, host: &str, check: &str) -> Failure {
        match error {
            ureq::Error::HostNotFound => {
                Failure::permanent(unknown_host(host, "no address", check))
            }
            ureq::Error::Io(e) => match lookup_failure(e) {
                // EAI_AGAIN: the name server did not answer; it may next time.
                Some(detail) if !detail.contains("Temporary failure") => {
                    Failure::permanent(unknown_host(host, &detail, check))
                }
                // The system's words (`Connection refused (os error 111)`), without ureq's `io: `.
                _ => Failure::transient(e.to_string()),
            },
            // The URL or the proxy variable is malformed: the same on every try.
            ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::InvalidProxyUrl => {
                Failure::permanent(format!("{host}: {error}"))
            }
            ureq::Error::Tls(why) => Failure::permanent(format!("TLS to {host}: {why}")),
            ureq::Error::Timeout(_) => Failure {
                timed_out: true,
                ..Failure::transient(error.to_string())
            },
            _ => Failure::transient(error.to_string()),
        }
    }
}

/// The rustls error under `error`: a failed handshake is an `io::Error` wrapping it.
fn rustls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// The resolver's words when the host name could not be looked up (std's `to_socket_addrs`
/// says `failed to lookup address information: Name or service not known`).
fn lookup_failure(error: &io::Error) -> Option<String> {
    error
        .to_string()
        .strip_prefix("failed to lookup address information: ")
        .map(str::to_string)
}

fn unknown_host(host: &str, detail: &str, check: &str) -> String {
    format!("DNS: {host} does not resolve ({detail}); check {check} and the router's name server")
}

/// `TLS: the certificate of <host> is not trusted (UnknownIssuer); …`, with the fix.
fn tls_message(error: &rustls::Error, host: &str, service: Service, checked: &Roots) -> String {
    use rustls::CertificateError as C;
    let set = trust::fix_variables(service);
    let bundle = checked.bundle();
    let roots = format!(" (checked against {checked})");
    let rustls::Error::InvalidCertificate(problem) = error else {
        return format!("TLS: the handshake with {host} failed ({error})");
    };
    let (what, fix) = match problem {
        C::UnknownIssuer | C::BadSignature => (
            "is not trusted".to_string(),
            match bundle {
                None => format!("behind a TLS-inspecting proxy set {set} to its CA"),
                Some(_) => format!("set {set} to a bundle that holds the CA that signed it"),
            },
        ),
        C::Expired | C::ExpiredContext { .. } => (
            "has expired".to_string(),
            "check the router's clock (ntp) and the server's certificate".to_string(),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            "is not valid yet".to_string(),
            "check the router's clock (ntp)".to_string(),
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => (
            format!("is not valid for the name {host}"),
            "check the endpoint's host name".to_string(),
        ),
        _ => (
            "is not acceptable".to_string(),
            format!("check the server's certificate, or set {set} to its CA"),
        ),
    };
    let roots = if matches!(problem, C::UnknownIssuer | C::BadSignature) {
        roots
    } else {
        String::new()
    };
    format!(
        "TLS: the certificate of {host} {what} ({}); {fix}{roots}",
        kind(problem)
    )
}

/// `UnknownIssuer`, `ExpiredContext`: the variant's name without its fields.
fn kind(problem: &rustls::CertificateError) -> String {
    let debug = format!("{problem:?}");
    debug
        .split([' ', '(', '{'])
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    fn handshake(problem: CertificateError) -> ureq::Error {
        let tls = rustls::Error::InvalidCertificate(problem);
        ureq::Error::Io(io::Error::new(io::ErrorKind::InvalidData, tls))
    }

    fn aws(error: ureq::Error) -> Failure {
        Failure::of(
            &error,
            "ec2.us-east-1.amazonaws.com",
            Service::Aws,
            &Roots::BuiltIn,
            None,
        )
    }

    #[test]
    fn an_untrusted_certificate_is_permanent_and_names_the_variables_to_set() {
        let failure = aws(handshake(CertificateError::UnknownIssuer));
        assert_eq!(
            failure,
            Failure::permanent(
                "TLS: the certificate of ec2.us-east-1.amazonaws.com is not trusted \
                 (UnknownIssuer); behind a TLS-inspecting proxy set AWS_CA_BUNDLE or \
                 CSR_HA_CA_BUNDLE to its CA (checked against the built-in Mozilla roots)"
                    .into()
            )
        );
        let bundle = trust::Bundle {
            variable: "REQUESTS_CA_BUNDLE",
            path: "/etc/site-ca.pem".into(),
        };
        let error = handshake(CertificateError::UnknownIssuer);
        let failure = Failure::of(
            &error,
            "management.azure.com",
            Service::Azure,
            &Roots::Named(bundle),
            None,
        );
        assert!(failure.permanent);
        assert!(
            failure
                .cause
                .contains("(checked against REQUESTS_CA_BUNDLE=/etc/site-ca.pem)")
                && failure
                    .cause
                    .contains("set REQUESTS_CA_BUNDLE or CSR_HA_CA_BUNDLE"),
            "{}",
            failure.cause
        );
    }

    #[test]
    fn expired_and_misnamed_certificates_are_permanent_with_their_own_fix() {
        let expired = aws(handshake(CertificateError::Expired));
        assert!(expired.permanent);
        assert!(
            expired
                .cause
                .contains("has expired (Expired); check the router's clock"),
            "{}",
            expired.cause
        );
        let misnamed = aws(handshake(CertificateError::NotValidForName));
        assert!(misnamed.permanent);
        assert!(
            misnamed.cause.contains(
                "is not valid for the name ec2.us-east-1.amazonaws.com (NotValidForName)"
            ),
            "{}",
            misnamed.cause
        );
    }

    #[test]
    fn a_name_that_does_not_resolve_is_permanent_a_silent_resolver_is_not() {
        let lookup = |detail: &str| {
            ureq::Error::Io(io::Error::other(format!(
                "failed to lookup address information: {detail}"
            )))
        };
        let unknown = aws(lookup("Name or service not known"));
        assert!(unknown.permanent);
        assert!(
            unknown.cause.starts_with(
                "DNS: ec2.us-east-1.amazonaws.com does not resolve (Name or service not known)"
            ),
            "{}",
            unknown.cause
        );
        assert!(aws(ureq::Error::HostNotFound).permanent);
        assert!(!aws(lookup("Temporary failure in name resolution")).permanent);
    }

    #[test]
    fn refused_reset_and_timed_out_connections_are_transient() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
        ] {
            let failure = aws(ureq::Error::Io(io::Error::from(kind)));
            assert!(!failure.permanent, "{kind:?}");
        }
        let timeout = aws(ureq::Error::Timeout(ureq::Timeout::Global));
        assert!(!timeout.permanent && timeout.timed_out);
        assert!(!aws(ureq::Error::ConnectionFailed).timed_out);
        assert!(!aws(ureq::Error::ConnectionFailed).permanent);
    }

    fn via_proxy(error: ureq::Error) -> Failure {
        let proxy = super::super::proxy::from_env(&|name| {
            (name == "HTTPS_PROXY").then(|| "http://proxy.invalid:3128".to_string())
        })
        .expect("usable")
        .expect("set");
        Failure::of(
            &error,
            "ec2.us-east-1.amazonaws.com",
            Service::Aws,
            &Roots::BuiltIn,
            Some(&proxy),
        )
    }

    #[test]
    fn a_failure_through_a_proxy_names_the_proxy_and_its_variable() {
        let refused = via_proxy(ureq::Error::Io(io::Error::from(
            io::ErrorKind::ConnectionRefused,
        )));
        assert!(!refused.permanent);
        assert!(
            refused
                .cause
                .starts_with("via proxy http://proxy.invalid:3128 (HTTPS_PROXY): "),
            "{}",
            refused.cause
        );
        let unknown = via_proxy(ureq::Error::Io(io::Error::other(
            "failed to lookup address information: Name or service not known",
        )));
        assert!(unknown.permanent, "an unknown proxy host is permanent");
        assert_eq!(
            unknown.cause,
            "via proxy http://proxy.invalid:3128 (HTTPS_PROXY): DNS: proxy.invalid:3128 does not \
             resolve (Name or service not known); check HTTPS_PROXY and the router's name server"
        );
        let denied = via_proxy(ureq::Error::ConnectProxyFailed(
            "proxy server responded 407/Proxy Authentication Required".into(),
        ));
        assert!(denied.permanent);
        let busy = via_proxy(ureq::Error::ConnectProxyFailed(
            "proxy server responded 503/Service Unavailable".into(),
        ));
        assert!(!busy.permanent);
    }
}
