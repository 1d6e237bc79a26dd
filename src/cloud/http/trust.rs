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

use std::fmt;
use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem};

use super::Service;
use crate::fs_util::{self, ReadError};

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

/// The most a CA file may hold, and the most one bundle (all of an `SSL_CERT_DIR` list) may
/// read in all: a real bundle is about 250 KB, and whatever a variable names, the handler's
/// memory stays within a small bound (`/dev/zero` once took 24 GB).
pub const MAX_BUNDLE_BYTES: u64 = 8 * 1024 * 1024;

/// Why a PEM file gave no certificates.
#[derive(Debug)]
pub enum PemProblem {
    /// Missing, not a regular file, too large, or unreadable; nothing was read.
    Unreadable(ReadError),
    /// A block that is not whole (no `-----END …-----`) or not base64.
    BadBlock { position: usize, why: String },
    /// A `CERTIFICATE` block whose content is not an X.509 certificate.
    NotACertificate { position: usize, why: String },
    /// No `-----BEGIN CERTIFICATE-----` block at all.
    NoCertificate,
}

impl fmt::Display for PemProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemProblem::Unreadable(why) => write!(f, "{why}"),
            PemProblem::BadBlock { position, why } => write!(
                f,
                "the {} PEM block is not whole PEM ({why}); replace it with the certificate's \
                 full text, -----BEGIN to -----END",
                ordinal(*position)
            ),
            PemProblem::NotACertificate { position, why } => write!(
                f,
                "the {} PEM block is not a certificate ({why}); remove it or replace it with the CA's \
                 certificate",
                ordinal(*position)
            ),
            PemProblem::NoCertificate => {
                f.write_str("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
            }
        }
    }
}

/// A PEM file that gave no certificates: what it is (`CA bundle AWS_CA_BUNDLE=/x.pem`, or the
/// caller's own words), its path, and why.
#[derive(Debug)]
pub struct PemFileError {
    pub what: String,
    pub path: PathBuf,
    pub problem: PemProblem,
}

impl fmt::Display for PemFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.problem)
    }
}

impl std::error::Error for PemFileError {}

/// `1st`, `2nd`, `3rd`, `4th`, `11th`, `21st`.
pub fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The certificates of the PEM file at `path`, which `what` names in messages (`CA bundle
/// AWS_CA_BUNDLE=/bootflash/ca.pem`, `the system CA bundle /etc/pki/tls/certs/ca-bundle.crt`).
/// The file must be a regular file of at most [`MAX_BUNDLE_BYTES`], opened without blocking
/// and checked before it is read; every `CERTIFICATE` block must be a whole, parsable
/// certificate; other blocks (private keys, CRLs) are skipped. A file with no certificate is
/// an error too.
pub fn read_pem_file(path: &Path, what: &str) -> Result<Vec<Certificate<'static>>, PemFileError> {
    let error = |problem| PemFileError {
        what: what.to_string(),
        path: path.to_path_buf(),
        problem,
    };
    let pem = fs_util::read_regular(path, MAX_BUNDLE_BYTES)
        .map_err(|why| error(PemProblem::Unreadable(why)))?;
    let certs = certificates(&pem).map_err(error)?;
    if certs.is_empty() {
        return Err(error(PemProblem::NoCertificate));
    }
    Ok(certs)
}

/// The certificates of `bundle`: every one in the file, or in every file of the directory
/// (`SSL_CERT_DIR`: of each directory of its `:`-separated list, as OpenSSL reads it).
/// An error names the variable and the path and says what is wrong with them.
pub fn load(bundle: &Bundle) -> Result<Vec<Certificate<'static>>, String> {
    if bundle.variable != SSL_CERT_DIR {
        return read_pem_file(Path::new(&bundle.path), &format!("CA bundle {bundle}")).map_err(
            |e| match e.problem {
                PemProblem::Unreadable(ReadError::NotRegular("a directory")) => format!(
                    "{e}; a directory of certificates is named by SSL_CERT_DIR, a file by {}",
                    bundle.variable
                ),
                _ => e.to_string(),
            },
        );
    }
    let unusable = |why: String| format!("CA bundle {bundle}: {why}");
    // A directory of the list that does not exist is skipped, as OpenSSL skips it.
    let dirs: Vec<&Path> = bundle.path.split(':').map(Path::new).collect();
    if !dirs.iter().any(|dir| dir.is_dir()) {
        return Err(unusable("names no directory that exists".into()));
    }
    let mut budget = MAX_BUNDLE_BYTES;
    let mut certs = Vec::new();
    for dir in dirs.into_iter().filter(|dir| dir.is_dir()) {
        certs.extend(directory(bundle, dir, &mut budget)?);
    }
    if certs.is_empty() {
        return Err(unusable(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The certificates in the files of `dir`, at most `budget` bytes read in all. A directory of
/// hashed links holds other files too (a README, CRLs): files without a certificate are
/// skipped, as OpenSSL skips them, and so is every entry that is not a regular file (a FIFO,
/// a device, a subdirectory: reading one could block or never end), which the log names. A
/// file whose certificate is broken is an error naming it.
fn directory(
    bundle: &Bundle,
    dir: &Path,
    budget: &mut u64,
) -> Result<Vec<Certificate<'static>>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("CA bundle {bundle}: cannot list {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut certs = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        // stat, not open: it follows the hashed links, and never blocks.
        let len = match std::fs::metadata(&file) {
            Ok(meta) if meta.is_file() && meta.len() > MAX_BUNDLE_BYTES => {
                let why = ReadError::TooLarge {
                    limit: MAX_BUNDLE_BYTES,
                };
                skipped.push(format!("{} ({why})", file.display()));
                continue;
            }
            Ok(meta) if meta.is_file() => meta.len(),
            Ok(meta) => {
                skipped.push(format!(
                    "{} ({})",
                    file.display(),
                    fs_util::kind_of(meta.file_type())
                ));
                continue;
            }
            Err(e) => {
                skipped.push(format!("{} ({e})", file.display()));
                continue;
            }
        };
        if len > *budget {
            return Err(format!(
                "CA bundle {bundle}: holds more than {} of files; name the directory of the CA \
                 certificates only",
                fs_util::size(MAX_BUNDLE_BYTES)
            ));
        }
        let what = format!("CA bundle {bundle}: file {}", file.display());
        match read_pem_file(&file, &what) {
            Ok(found) => certs.extend(found),
            Err(PemFileError {
                problem: PemProblem::NoCertificate,
                ..
            }) => {}
            Err(PemFileError {
                problem: PemProblem::Unreadable(why),
                ..
            }) => skipped.push(format!("{} ({why})", file.display())),
            Err(e) => return Err(e.to_string()),
        }
        *budget = budget.saturating_sub(len);
    }
    if !skipped.is_empty() {
        log::warn!(
            "CA bundle {bundle}: skipped {} entr{} that are not readable regular files: {}",
            skipped.len(),
            if skipped.len() == 1 { "y" } else { "ies" },
            skipped.join(", ")
        );
    }
    Ok(certs)
}

/// The certificates in PEM text, each checked to be an X.509 certificate; private keys and
/// other sections are skipped. A block is everything from one `-----BEGIN` line to the next, so
/// the position in an error counts every block of the file.
fn certificates(pem: &[u8]) -> Result<Vec<Certificate<'static>>, PemProblem> {
    let mut certs = Vec::new();
    for (i, block) in blocks(pem).into_iter().enumerate() {
        let position = i + 1;
        let Some(item) = ureq::tls::parse_pem(block).next() else {
            continue; // a section kind that is neither a certificate nor a key
        };
        let cert = match item {
            Ok(PemItem::Certificate(cert)) => cert,
            Ok(_) => continue,
            Err(e) => {
                return Err(PemProblem::BadBlock {
                    position,
                    why: pem_error(&e),
                })
            }
        };
        let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
        if let Err(e) = rustls::RootCertStore::empty().add(der) {
            return Err(PemProblem::NotACertificate {
                position,
                why: e.to_string(),
            });
        }
        certs.push(cert);
    }
    Ok(certs)
}

/// The text from each `-----BEGIN` line to the next (or to the end).
fn blocks(pem: &[u8]) -> Vec<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    let starts: Vec<usize> = (0..pem.len())
        .filter(|&i| (i == 0 || pem[i - 1] == b'\n') && pem[i..].starts_with(BEGIN))
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &pem[start..starts.get(n + 1).copied().unwrap_or(pem.len())])
        .collect()
}

/// ureq's PEM error in words (its own `Display` prints the end marker as bytes).
fn pem_error(error: &ureq::Error) -> String {
    let text = error.to_string();
    if text.contains("MissingSectionEnd") {
        "it is truncated: no -----END line".to_string()
    } else if text.contains("Base64Decode") {
        "its text is not base64".to_string()
    } else {
        text
    }
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

    /// A self-signed test CA (P-256), valid until 2126.
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBkjCCATmgAwIBAgIUbntW409kmUJAyeLYlA1UZUdJ2+0wCgYIKoZIzj0EAwIw\nHjEcMBoGA1UEAwwTY3NyLWhhIHVuaXQgdGVzdCBDQTAgFw0yNjEyMDgwMjA5MTha\nGA8yMTI2MTExNDAyMDkxOFowHjEcMBoGA1UEAwwTY3NyLWhhIHVuaXQgdGVzdCBD\nQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABMYTWY173ddnoVQx1uGtAN3RlZTx\nadwjJwN/wDNWJRRBuV03Df+qgXwAY6cgI9QR7xkMXqE56j4CWByt5/35lSGjUzBR\nMB0GA1UdDgQWBBRuFcorGjf/Bd+5nLhJa1Ontzm/7DAfBgNVHSMEGDAWgBRuFcor\nGjf/Bd+5nLhJa1Ontzm/7DAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA\nMEQCIE3Ib/IWDz7T0FZNWtJowaCsvWJK3RnFDQnQnIIlujuhAiBepOugNR43fOzK\nBOi9NW77WoN4papbWyITVj01pSoCBQ==\n-----END CERTIFICATE-----\n";

    fn bundle(path: &Path) -> Bundle {
        Bundle {
            variable: "AWS_CA_BUNDLE",
            path: path.display().to_string(),
        }
    }

    #[test]
    fn a_bundle_that_cannot_be_used_is_named_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
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
        let err = load(&bundle(dir.path())).expect_err("a directory");
        assert_eq!(
            err,
            format!(
                "CA bundle AWS_CA_BUNDLE={}: is a directory, not a regular file; a directory of \
                 certificates is named by SSL_CERT_DIR, a file by AWS_CA_BUNDLE",
                dir.path().display()
            )
        );
    }

    #[test]
    fn fifos_devices_and_huge_files_are_refused_before_a_byte_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("ca.pem");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        let err = load(&bundle(&fifo)).expect_err("a FIFO");
        assert!(
            err.ends_with("ca.pem: is a FIFO, not a regular file"),
            "{err}"
        );
        let err = load(&bundle(Path::new("/dev/zero"))).expect_err("a device");
        assert_eq!(
            err,
            "CA bundle AWS_CA_BUNDLE=/dev/zero: is a character device, not a regular file"
        );
        let huge = dir.path().join("huge.pem");
        let file = std::fs::File::create(&huge).expect("create");
        file.set_len(MAX_BUNDLE_BYTES + 1).expect("sparse file");
        let err = load(&bundle(&huge)).expect_err("too large");
        assert!(err.ends_with("huge.pem: is larger than 8 MiB"), "{err}");
    }

    #[test]
    fn a_broken_block_is_named_by_its_position_in_words() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ca.pem");
        let garbage = "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n";
        std::fs::write(&file, format!("{CA}{CA}{garbage}")).expect("write");
        let err = load(&bundle(&file)).expect_err("garbage");
        assert!(
            err.starts_with(&format!(
                "CA bundle AWS_CA_BUNDLE={}: the 3rd PEM block is not a certificate (",
                file.display()
            )),
            "{err}"
        );
        let truncated = &CA[..CA.len() / 2];
        std::fs::write(&file, format!("{CA}{truncated}")).expect("write");
        let err = load(&bundle(&file)).expect_err("truncated");
        assert!(
            err.contains(
                ": the 2nd PEM block is not whole PEM (it is truncated: no -----END line)"
            ),
            "{err}"
        );
        std::fs::write(&file, format!("{CA}{CA}")).expect("write");
        assert_eq!(load(&bundle(&file)).expect("two certificates").len(), 2);
        assert_eq!(
            [1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(ordinal),
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }

    #[test]
    fn ssl_cert_dir_skips_what_is_not_a_regular_file_and_names_a_broken_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).expect("mkdir");
        nix::unistd::mkfifo(&certs.join("a.pem"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        std::fs::create_dir(certs.join("sub.pem")).expect("mkdir");
        std::fs::write(certs.join("b.pem"), CA).expect("write");
        std::fs::write(certs.join("README"), "hashed links\n").expect("write");
        let ssl_cert_dir = |path: &Path| Bundle {
            variable: SSL_CERT_DIR,
            path: path.display().to_string(),
        };
        assert_eq!(load(&ssl_cert_dir(&certs)).expect("b.pem").len(), 1);
        std::fs::write(certs.join("c.pem"), &CA[..CA.len() - 30]).expect("write");
        let err = load(&ssl_cert_dir(&certs)).expect_err("c.pem is cut");
        assert!(
            err.contains("c.pem: the 1st PEM block is not whole PEM"),
            "{err}"
        );
        let started = std::time::Instant::now();
        let err = load(&ssl_cert_dir(Path::new("/dev"))).expect_err("no certificates");
        assert!(err.contains("holds no PEM certificate"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
