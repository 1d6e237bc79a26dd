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

/// The command list is written once, in `scripts/csr_ha_lib.sh` (which the wrappers, the cron
/// scripts, `debug_bundle.sh` and `csr_ha_setup` source); what cannot read it agrees with it:
/// pyproject.toml's maturin targets, `src/bin/`, the checkout's `bin/` links and these tests.
#[test]
fn the_command_list_in_csr_ha_lib_is_the_one_every_other_list_agrees_with() {
    let out = Command::new("sh")
        .arg(repo().join("scripts/csr_ha_setup"))
        .arg("--manifest")
        .output_retrying()
        .expect("csr_ha_setup --manifest");
    assert_ok(&out, "csr_ha_setup --manifest");
    let manifest = stdout(&out);
    let list = |key: &str| -> Vec<String> {
        let line = manifest
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
            .unwrap_or_else(|| panic!("no {key} in {manifest}"));
        let mut words: Vec<String> = line
            .trim_end_matches('"')
            .split_whitespace()
            .map(str::to_string)
            .collect();
        words.sort();
        words
    };
    let binaries = list("BINARIES");

    let pyproject = read(&repo().join("pyproject.toml"));
    let mut targets: Vec<String> = pyproject
        .lines()
        .filter(|l| l.contains("kind = \"bin\""))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect();
    targets.sort();
    assert_eq!(targets, binaries, "pyproject.toml's targets");

    let mut sources: Vec<String> = std::fs::read_dir(repo().join("src/bin"))
        .expect("src/bin")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    sources.sort();
    assert_eq!(sources, binaries, "src/bin/*.rs");

    let mut wrappers: Vec<String> = WRAPPERS.iter().map(|w| format!("{w}.py")).collect();
    wrappers.sort();
    assert_eq!(wrappers, list("WRAPPERS"), "tests/util's WRAPPERS");
    for w in list("WRAPPERS") {
        let link = repo().join("bin").join(&w);
        assert!(link.is_symlink(), "bin/{w} is not a link to the wrapper");
    }
    for s in list("SCRIPTS") {
        assert!(
            repo().join("scripts").join(&s).exists(),
            "scripts/{s} is missing"
        );
    }
}
