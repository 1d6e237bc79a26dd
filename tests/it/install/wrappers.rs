//! The `bin/` wrappers with the original script names (`create_node.py`, …): one POSIX sh
//! script, run from a checkout, through a symlink, or installed.

use crate::util;

use util::machine::*;

#[test]
fn all_wrappers_are_the_same_executable_posix_sh_script() {
    let first = std::fs::read(repo().join("bin/node_event.py")).expect("bin/node_event.py");
    assert!(first.starts_with(b"#!/bin/sh\n"));
    for name in WRAPPERS {
        for file in [name.to_string(), format!("{name}.py")] {
            let path = repo().join("bin").join(&file);
            assert_eq!(
                std::fs::read(&path).expect("wrapper"),
                first,
                "bin/{file} differs from bin/node_event.py"
            );
            let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
            assert_eq!(mode & 0o111, 0o111, "bin/{file} is not executable");
        }
    }
    let out = Command::new("sh")
        .arg("-n")
        .arg(repo().join("bin/node_event.py"))
        .output_retrying()
        .expect("sh -n");
    assert_ok(&out, "sh -n bin/node_event.py");
}

#[test]
fn checkout_wrappers_run_the_built_binaries_by_full_path_from_any_directory() {
    let m = Machine::new(false);
    let target = bin_dir().parent().expect("target dir").to_path_buf();
    for name in WRAPPERS {
        for file in [name.to_string(), format!("{name}.py")] {
            let out = m
                .command(&repo().join("bin").join(&file))
                .env("CARGO_TARGET_DIR", &target)
                .arg("-h")
                .output_retrying()
                .expect("run wrapper");
            assert_ok(&out, &file);
            assert!(
                stdout(&out).starts_with(&format!("usage: {name}")),
                "bin/{file} -h: {}",
                text(&out)
            );
        }
    }
    // Arguments and exit codes pass through unchanged.
    let out = m
        .command(&repo().join("bin/node_event.py"))
        .env("CARGO_TARGET_DIR", &target)
        .args(["-i", "0", "-e", "revert"])
        .output_retrying()
        .expect("run wrapper");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stdout(&out).starts_with("400: "), "{}", text(&out));
}

#[test]
fn a_symlinked_wrapper_finds_its_binary_and_a_missing_one_says_where_it_looked() {
    let m = Machine::new(false);
    let link = m.elsewhere.join("status.py");
    std::os::unix::fs::symlink(repo().join("bin/show_node.py"), &link).expect("symlink");
    let out = m
        .command(&link)
        .env("CSR_HA_BIN", bin_dir())
        .arg("-h")
        .output_retrying()
        .expect("run");
    assert!(
        stdout(&out).starts_with("usage: show_node"),
        "{}",
        text(&out)
    );

    let out = m
        .command(&repo().join("bin/ha_api.py"))
        .env("CSR_HA_BIN", &m.fake)
        .arg("-h")
        .output_retrying()
        .expect("run");
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("400: CSR_HA_BIN="), "{err}");

    // An installed-looking copy with no binary beside it and none on PATH.
    let lone = m.elsewhere.join("node_event.py");
    std::fs::copy(repo().join("bin/node_event.py"), &lone).expect("copy");
    let out = m.command(&lone).arg("-h").output_retrying().expect("run");
    assert_eq!(out.status.code(), Some(127), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot find the csr-ha binary 'node_event'")
    );
}
