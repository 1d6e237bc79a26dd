//! The operating system's CA bundle, trusted beside the built-in Mozilla roots.
//!
//! The original's libraries trusted guestshell's own bundle (`verify=
//! "/etc/ssl/certs/ca-bundle.trust.crt"`), so a site CA added with `update-ca-trust` worked, and
//! an old guestshell still had its roots. Here a cloud's certificate is checked against the
//! built-in Mozilla roots **plus** the first bundle of [`SYSTEM_BUNDLES`] that exists and holds
//! certificates; a bundle named by a variable ([`super::trust`]: `CSR_HA_CA_BUNDLE`,
//! `AWS_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `SSL_CERT_DIR`) replaces both, as
//! before. A system bundle that cannot be used is logged and left out: the built-in roots
//! remain, and nobody asked for that file.
//!
//! ```text
//! named variable set?  ── yes ─► that bundle only                       (Roots::Named)
//!        │ no
//! a system bundle?     ── yes ─► Mozilla roots + the system bundle      (Roots::BuiltInAndSystem)
//!        │ no
//!        └──────────────────────► Mozilla roots                         (Roots::BuiltIn)
//! ```
//!
//! The file is read by [`trust::load`], as a named bundle is.

use std::fmt;
use std::path::Path;

use ureq::tls::Certificate;

use super::trust::{self, Bundle};
use super::Service;

/// Where systems keep their CA bundle, in the order they are looked for: guestshell and
/// CentOS/RHEL (`update-ca-trust` writes the first two), Debian and Ubuntu, Fedora, openSUSE,
/// Alpine.
pub const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-bundle.trust.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// **Test only**: a `:`-separated list of files looked for in place of [`SYSTEM_BUNDLES`]
/// (empty: no system bundle), so a test can play the system's bundle with a file of its own.
pub const PATHS_VARIABLE: &str = "CSR_HA_SYSTEM_CA_PATHS";

/// The roots a client checks certificates against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// A bundle named by a variable, in place of any other.
    Named(Bundle),
    /// The built-in Mozilla roots alone (no system bundle, or a metadata service).
    BuiltIn,
    /// The built-in Mozilla roots and the system bundle at this path.
    BuiltInAndSystem(String),
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::Named(bundle) => write!(f, "{bundle}"),
            Roots::BuiltIn => f.write_str("the built-in Mozilla roots"),
            Roots::BuiltInAndSystem(path) => {
                write!(f, "the built-in Mozilla roots and the system bundle {path}")
            }
        }
    }
}

impl Roots {
    /// The roots `service` would use with the variables `lookup` finds, without reading any
    /// file (for `ha_api -c status`). A system bundle is the first of the list that exists.
    pub fn of(service: Service, lookup: &dyn Fn(&str) -> Option<String>) -> Roots {
        if service == Service::Metadata {
            return Roots::BuiltIn;
        }
        if let Some(bundle) = trust::named(service, lookup) {
            return Roots::Named(bundle);
        }
        match candidates(lookup)
            .into_iter()
            .find(|p| Path::new(p).is_file())
        {
            Some(path) => Roots::BuiltInAndSystem(path),
            None => Roots::BuiltIn,
        }
    }

    /// The named bundle, if the roots are one (for messages that name the variable).
    pub fn bundle(&self) -> Option<&Bundle> {
        match self {
            Roots::Named(bundle) => Some(bundle),
            Roots::BuiltIn | Roots::BuiltInAndSystem(_) => None,
        }
    }
}

/// The files looked for: [`PATHS_VARIABLE`]'s list if set, else [`SYSTEM_BUNDLES`].
fn candidates(lookup: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    match lookup(PATHS_VARIABLE) {
        Some(list) => list
            .split(':')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        None => SYSTEM_BUNDLES.iter().map(|p| p.to_string()).collect(),
    }
}

/// The system bundle for `service` and its certificates with the built-in roots: the first
/// file of the list that exists and holds certificates. `None` when there is none (the built-in
/// roots alone), or when a variable names a bundle (it replaces both).
pub fn load(
    service: Service,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<(String, Vec<Certificate<'static>>)> {
    if service == Service::Metadata || trust::named(service, lookup).is_some() {
        return None;
    }
    for path in candidates(lookup) {
        if !Path::new(&path).is_file() {
            continue;
        }
        let bundle = Bundle {
            variable: "system bundle",
            path: path.clone(),
        };
        match trust::load(&bundle) {
            Ok(system) => return Some((path, with_built_in(system))),
            Err(why) => log::warn!("{why}: not used, the built-in roots remain"),
        }
    }
    None
}

/// The built-in Mozilla roots (as certificates, so that they can sit beside others in one
/// store) followed by `others`.
fn with_built_in(others: Vec<Certificate<'static>>) -> Vec<Certificate<'static>> {
    webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|der| Certificate::from_der(der.as_ref()).to_owned())
        .chain(others)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_bundle_replaces_the_system_one_and_metadata_needs_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let system = dir.path().join("system.pem");
        std::fs::write(&system, "x").expect("write");
        let system = system.display().to_string();
        let paths = format!("/nonexistent/a.pem:{system}");
        let vars = |named: Option<&'static str>| {
            let paths = paths.clone();
            move |name: &str| match name {
                PATHS_VARIABLE => Some(paths.clone()),
                "AWS_CA_BUNDLE" => named.map(str::to_string),
                _ => None,
            }
        };
        assert_eq!(
            Roots::of(Service::Aws, &vars(None)),
            Roots::BuiltInAndSystem(system.clone())
        );
        assert_eq!(
            Roots::of(Service::Aws, &vars(None)).to_string(),
            format!("the built-in Mozilla roots and the system bundle {system}")
        );
        assert!(matches!(
            Roots::of(Service::Aws, &vars(Some("/site.pem"))),
            Roots::Named(_)
        ));
        assert_eq!(Roots::of(Service::Metadata, &vars(None)), Roots::BuiltIn);
        let none = |name: &str| (name == PATHS_VARIABLE).then(String::new);
        assert_eq!(Roots::of(Service::Gcp, &none), Roots::BuiltIn);
        // The file holds no certificate: logged, left out.
        assert!(load(Service::Aws, &vars(None)).is_none());
    }

    #[test]
    fn the_built_in_roots_come_with_the_system_ones() {
        let built_in = with_built_in(Vec::new()).len();
        assert!(built_in > 100, "{built_in}");
        let extra = Certificate::from_der(b"not parsed here").to_owned();
        assert_eq!(with_built_in(vec![extra]).len(), built_in + 1);
    }
}
