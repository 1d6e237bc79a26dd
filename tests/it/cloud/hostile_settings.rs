//! A wrong setting never takes the router down: a CA variable naming a device or a FIFO, a
//! proxy variable that cannot be used. Each is a `400:` at once that names the variable, the
//! path or the proxy, and why.

use crate::util;

use util::Ha;

const INHERITED: [&str; 14] = util::tls::CA_AND_PROXY_VARIABLES;

/// An AWS node (static keys, EC2 at `endpoint`) in a server started with `env` alone.
fn aws_node(endpoint: &str, env: &[(&str, &str)]) -> Ha {
    let clean = INHERITED
        .iter()
        .fold(Ha::new().with_private_runtime_dir(), |ha, var| {
            ha.without_env(var)
        });
    let mut ha = env
        .iter()
        .fold(util::aws_run::aws_env(clean, endpoint), |ha, (k, v)| {
            ha.with_env(k, v)
        });
    ha.start();
    // The live check fails the same way; the node is stored all the same.
    ha.run(
        "create_node",
        &[
            "-i",
            "1",
            "-t",
            "rtb-0a1b2c3d",
            "-rg",
            "us-east-1",
            "-n",
            "eni-0a1b2c3d",
            "-m",
            "primary",
        ],
    );
    ha
}

fn failing_peer_fail(ha: &Ha) -> String {
    ha.expect(1, "node_event", &["-i", "1", "-e", "peerFail"])
        .trim()
        .to_string()
}

#[test]
fn a_device_as_ca_bundle_is_refused_before_a_byte_is_read() {
    let ha = aws_node("https://127.0.0.1:9", &[("CSR_HA_CA_BUNDLE", "/dev/zero")]);
    assert_eq!(
        failing_peer_fail(&ha),
        "400: node 1 peerFail: CA bundle CSR_HA_CA_BUNDLE=/dev/zero: is a character device, \
         not a regular file"
    );
}

#[test]
fn a_fifo_as_ca_bundle_or_in_ssl_cert_dir_never_blocks_the_handler() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let fifo = scratch.path().join("ca.pem");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let fifo = fifo.to_str().expect("utf-8").to_string();
    let ha = aws_node("https://127.0.0.1:9", &[("AWS_CA_BUNDLE", &fifo)]);
    assert_eq!(
        failing_peer_fail(&ha),
        format!(
            "400: node 1 peerFail: CA bundle AWS_CA_BUNDLE={fifo}: is a FIFO, not a regular file"
        )
    );
    drop(ha);

    // In SSL_CERT_DIR the FIFO is skipped, as OpenSSL skips what is not a file, and logged.
    let dir = scratch.path().to_str().expect("utf-8").to_string();
    let ha = aws_node("https://127.0.0.1:9", &[("SSL_CERT_DIR", &dir)]);
    assert_eq!(
        failing_peer_fail(&ha),
        format!(
            "400: node 1 peerFail: CA bundle SSL_CERT_DIR={dir}: holds no PEM certificate \
             (-----BEGIN CERTIFICATE-----)"
        )
    );
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    assert!(
        log.contains(&format!("{fifo} (a FIFO)")),
        "the skipped FIFO is named in the log:\n{log}"
    );
}

#[test]
fn a_garbage_certificate_block_is_named_by_file_and_position() {
    let pki = util::tls::Pki::new();
    let ca = std::fs::read_to_string(pki.path("ca.pem")).expect("ca.pem");
    let scratch = tempfile::tempdir().expect("tempdir");
    let bundle = scratch.path().join("bundle.pem");
    std::fs::write(
        &bundle,
        format!("{ca}-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n"),
    )
    .expect("write");
    let bundle = bundle.to_str().expect("utf-8").to_string();
    let ha = aws_node("https://127.0.0.1:9", &[("SSL_CERT_FILE", &bundle)]);
    let out = failing_peer_fail(&ha);
    assert!(
        out.starts_with(&format!(
            "400: node 1 peerFail: CA bundle SSL_CERT_FILE={bundle}: the 2nd PEM block is not a \
             certificate ("
        )),
        "{out}"
    );
}

#[test]
fn a_one_letter_secret_never_garbles_a_message() {
    let ha = aws_node(
        "http://127.0.0.1:9",
        &[
            ("AWS_SECRET_ACCESS_KEY", "e"),
            ("CSR_HA_HANDLER_TIMEOUT", "2"),
        ],
    );
    let out = failing_peer_fail(&ha);
    assert!(
        out.contains("Connection refused") && !out.contains("********"),
        "{out}"
    );
}

#[test]
fn a_proxy_that_refuses_connections_is_named_with_its_variable() {
    let ha = aws_node(
        "https://127.0.0.1:9",
        &[
            ("HTTPS_PROXY", "http://127.0.0.1:1"),
            ("CSR_HA_HANDLER_TIMEOUT", "2"),
        ],
    );
    let out = failing_peer_fail(&ha);
    assert!(
        out.contains("via proxy http://127.0.0.1:1 (HTTPS_PROXY): Connection refused"),
        "{out}"
    );
}

#[test]
fn a_proxy_variable_that_cannot_be_used_fails_at_once_and_never_goes_direct() {
    // A fake EC2 that counts requests: nothing may reach it directly.
    let ec2 = util::aws_fakes::FakeEc2::start("rtb-0a1b2c3d", &[]);
    let ha = aws_node(&ec2.endpoint, &[("HTTPS_PROXY", "socks5://127.0.0.1:1080")]);
    assert_eq!(
        failing_peer_fail(&ha),
        "400: node 1 peerFail: HTTPS_PROXY=socks5://127.0.0.1:1080: SOCKS5 proxies are not \
         supported by this build (it speaks HTTP CONNECT to http:// and https:// proxies); name \
         an HTTP proxy, or unset it to connect directly"
    );
    drop(ha);
    let ha = aws_node(&ec2.endpoint, &[("https_proxy", "http://[::1")]);
    let out = failing_peer_fail(&ha);
    assert!(
        out.starts_with("400: node 1 peerFail: https_proxy=http://[::1: is not a proxy URL"),
        "{out}"
    );
    assert!(ec2.calls().is_empty(), "a request went direct");
}
