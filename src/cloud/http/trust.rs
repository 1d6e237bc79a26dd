//! Which certificates a cloud's server is checked against.
//!
//! The built-in Mozilla roots (webpki-roots, compiled in) unless a CA bundle is named, as the
//! tools the original ran with read them: `CSR_HA_CA_BUNDLE` (every cloud), then `AWS_CA_BUNDLE`
//! for AWS (boto3, the AWS CLI) or `REQUESTS_CA_BUNDLE` for Azure and GCP (the original's
//! `requests`), then OpenSSL's `SSL_CERT_FILE` and `SSL_CERT_DIR`. The first that is set and not
//! empty is used *in place of* the built-in roots, as those tools use it: a site behind a
//! TLS-inspecting proxy names its proxy's CA, and nothing else is trusted. Where none is named,
//! the system's own bundle is trusted beside the built-in roots ([`super::system_roots`]).
//!
//! A bundle that is named but cannot be used is the user's to fix, not the network's: the
//! client reports it on every request, at once ([`super::Client::send`]).

use std::path::Path;

use ureq::tls::{Certificate, PemItem};

use super::Service;

/// Trusted by every cloud's client.
pub const CSR_HA_CA_BUNDLE: &str = "CSR_HA_CA_BUNDLE";

/// OpenSSL's directory variable: a `:`-separated list of directories.
const SSL_CERT_DIR: &str = "SSL_CERT_DIR";

/// The variables that may name a CA bundle for `service`, in the order they are checked.
pub fn variables(service: Service) -> &'static [&'static str] {
    match service {
        Service::Aws => &[
            CSR_HA_CA_BUNDLE,
            "AWS_CA_BUNDLE",
            "SSL_CERT_FILE",
            SSL_CERT_DIR,
        ],
        Service::Azure | Service::Gcp => &[
            CSR_HA_CA_BUNDLE,
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
            SSL_CERT_DIR,
        ],
        // Plain HTTP on a link-local address: there is no certificate to check.
        Service::Metadata => &[],
    }
}

/// The variables a user sets to trust a site's CA for `service`, for messages.
pub fn fix_variables(service: Service) -> &'static str {
    match service {
        Service::Aws => "AWS_CA_BUNDLE or CSR_HA_CA_BUNDLE",
        Service::Azure | Service::Gcp => "REQUESTS_CA_BUNDLE or CSR_HA_CA_BUNDLE",
        Service::Metadata => "CSR_HA_CA_BUNDLE",
    }
}

/// A CA bundle named by a variable: the file (or, for `SSL_CERT_DIR`, the directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub variable: &'static str,
    pub path: String,
}

impl std::fmt::Display for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.variable, self.path)
    }
}

/// The bundle `service` uses: the first of its [`variables`] that `lookup` finds set and not
/// empty; `None` means the built-in Mozilla roots.
pub fn named(service: Service, lookup: &dyn Fn(&str) -> Option<String>) -> Option<Bundle> {
    variables(service).iter().find_map(|&variable| {
        let path = lookup(variable)?;
        let path = path.trim();
        (!path.is_empty()).then(|| Bundle {
            variable,
            path: path.to_string(),
        })
    })
}

/// The certificates of `bundle`: every one in the file, or in every file of the directory
/// (`SSL_CERT_DIR`: of each directory of its `:`-separated list, as OpenSSL reads it).
/// An error names the variable and the path and says what is wrong with them.
pub fn load(bundle: &Bundle) -> Result<Vec<Certificate<'static>>, String> {
    let path = Path::new(&bundle.path);
    let unusable = |why: String| format!("CA bundle {bundle}: {why}");
    let certs = if bundle.variable == SSL_CERT_DIR {
        // A directory of the list that does not exist is skipped, as OpenSSL skips it.
        let dirs: Vec<&Path> = bundle.path.split(':').map(Path::new).collect();
        if !dirs.iter().any(|dir| dir.is_dir()) {
            return Err(unusable("names no directory that exists".into()));
        }
        let mut certs = Vec::new();
        for dir in dirs.into_iter().filter(|dir| dir.is_dir()) {
            certs.extend(directory(dir).map_err(unusable)?);
        }
        certs
    } else if path.is_dir() {
        directory(path).map_err(unusable)?
    } else {
        let pem = std::fs::read(path).map_err(|e| unusable(format!("cannot be read: {e}")))?;
        certificates(&pem).map_err(|e| unusable(format!("is not a PEM file: {e}")))?
    };
    if certs.is_empty() {
        return Err(unusable(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The certificates in the files of `dir`. A directory of hashed links holds other files too
/// (a README, CRLs): those that are not PEM certificates are skipped, as OpenSSL does.
fn directory(dir: &Path) -> Result<Vec<Certificate<'static>>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    Ok(files
        .iter()
        .filter_map(|file| std::fs::read(file).ok())
        .flat_map(|pem| certificates(&pem).unwrap_or_default())
        .collect())
}

/// The certificates in PEM text; private keys and other sections are skipped.
fn certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, ureq::Error> {
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        if let PemItem::Certificate(cert) = item? {
            certs.push(cert);
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn chosen(service: Service, vars: &[(&str, &str)]) -> Option<String> {
        named(service, &lookup(vars)).map(|b| b.to_string())
    }

    #[test]
    fn csr_ha_ca_bundle_wins_then_the_clouds_own_variable_then_openssls() {
        let all = [
            ("SSL_CERT_DIR", "/d"),
            ("SSL_CERT_FILE", "/f"),
            ("REQUESTS_CA_BUNDLE", "/r"),
            ("AWS_CA_BUNDLE", "/a"),
            ("CSR_HA_CA_BUNDLE", "/c"),
        ];
        for service in [Service::Aws, Service::Azure, Service::Gcp] {
            assert_eq!(
                chosen(service, &all).as_deref(),
                Some("CSR_HA_CA_BUNDLE=/c")
            );
        }
        let no_csr_ha = &all[..4];
        assert_eq!(
            chosen(Service::Aws, no_csr_ha).as_deref(),
            Some("AWS_CA_BUNDLE=/a")
        );
        for service in [Service::Azure, Service::Gcp] {
            assert_eq!(
                chosen(service, no_csr_ha).as_deref(),
                Some("REQUESTS_CA_BUNDLE=/r")
            );
        }
        // AWS never reads requests' variable, Azure and GCP never boto3's.
        let other_tools = [("REQUESTS_CA_BUNDLE", "/r"), ("SSL_CERT_FILE", "/f")];
        assert_eq!(
            chosen(Service::Aws, &other_tools).as_deref(),
            Some("SSL_CERT_FILE=/f")
        );
        let other_tools = [("AWS_CA_BUNDLE", "/a"), ("SSL_CERT_DIR", "/d")];
        assert_eq!(
            chosen(Service::Gcp, &other_tools).as_deref(),
            Some("SSL_CERT_DIR=/d")
        );
    }

    #[test]
    fn empty_variables_and_metadata_services_mean_the_built_in_roots() {
        assert_eq!(
            chosen(
                Service::Aws,
                &[("CSR_HA_CA_BUNDLE", " "), ("AWS_CA_BUNDLE", "")]
            ),
            None
        );
        assert_eq!(
            chosen(Service::Metadata, &[("CSR_HA_CA_BUNDLE", "/c")]),
            None
        );
    }

    #[test]
    fn a_bundle_that_cannot_be_used_is_named_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bundle = |path: &Path| Bundle {
            variable: "AWS_CA_BUNDLE",
            path: path.display().to_string(),
        };
        let missing = dir.path().join("missing.pem");
        let err = load(&bundle(&missing)).expect_err("missing file");
        assert!(
            err.starts_with(&format!(
                "CA bundle AWS_CA_BUNDLE={}: cannot be read",
                missing.display()
            )),
            "{err}"
        );
        let empty = dir.path().join("key-only.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = load(&bundle(&empty)).expect_err("no certificate");
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = load(&bundle(dir.path())).expect_err("a directory without certificates");
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
