//! Logs that outlive guestshell: a rotated `csr_ha.log` is moved to the archive directory
//! (`CSR_HA_LOG_ARCHIVE_DIR`, here a temporary directory; on a router bootflash), the newest five
//! kept there; `none` keeps it as `csr_ha.log.1`. The real server and handlers write the log.

use crate::util;

use std::path::Path;

/// A server whose log is capped at `cap` bytes, with the archive directory `archive`, after
/// `rounds` create/delete pairs (each a few log lines).
fn logged(cap: &str, archive: &str, rounds: usize) -> util::Ha {
    let mut ha = util::Ha::new()
        .with_env("CSR_HA_LOG_MAX_BYTES", cap)
        .with_env("CSR_HA_LOG_ARCHIVE_DIR", archive);
    ha.start();
    for i in 1..=rounds {
        let index = i.to_string();
        ha.run(
            "create_node",
            &["-i", &index, "-t", "t1", "-n", "10.0.1.20"],
        );
        ha.run("delete_node", &["-i", &index]);
    }
    ha
}

/// The archived logs in `dir` (`csr_ha.log.<UTC time>`), oldest first.
fn archived(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|list| {
            list.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_rotated_log_lands_in_the_archive_directory_and_the_log_says_where() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let archive = scratch.path().join("bootflash/guest-share/csr_ha");
    let ha = logged("3000", archive.to_str().expect("utf-8"), 20);

    let names = archived(&archive);
    assert!(
        !names.is_empty(),
        "nothing archived in {}",
        archive.display()
    );
    for name in &names {
        // csr_ha.log.20261124T191900.123Z
        let stamp = name.strip_prefix("csr_ha.log.").unwrap_or("");
        assert!(
            stamp.len() >= 20 && stamp.as_bytes()[8] == b'T' && stamp.contains('Z'),
            "{name}"
        );
        let text = std::fs::read_to_string(archive.join(name)).expect("read");
        assert!(text.lines().all(|l| l.starts_with('[')), "{name}: {text}");
    }
    assert!(
        !ha.path("csr_ha.log.1").exists(),
        "the rotated file stayed in the HA directory"
    );
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    let newest = archive.join(names.last().expect("one"));
    assert!(
        log.contains(&format!(
            "the previous log is archived as {} (the newest 5 are kept there)",
            newest.display()
        )),
        "{log}"
    );
}

#[test]
fn the_archive_keeps_only_the_newest_five() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let archive = scratch.path().join("archive");
    std::fs::create_dir(&archive).expect("mkdir");
    std::fs::write(archive.join("README"), "not a log").expect("write");
    // About two lines per file: dozens of rotations.
    let _ha = logged("400", archive.to_str().expect("utf-8"), 15);

    let names = archived(&archive);
    let logs: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("csr_ha.log."))
        .collect();
    assert_eq!(logs.len(), 5, "{names:?}");
    assert!(names.contains(&"README".to_string()), "{names:?}");
}

#[test]
fn none_keeps_the_rotated_log_in_the_ha_directory() {
    let ha = logged("1500", "none", 20);
    let old = std::fs::read_to_string(ha.path("csr_ha.log.1")).expect("csr_ha.log.1");
    assert!(!old.is_empty());
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    assert!(!log.contains("archived"), "{log}");
}

#[test]
fn an_archive_directory_that_cannot_be_made_keeps_the_log_local_and_says_why() {
    let scratch = tempfile::tempdir().expect("tempdir");
    // Not a directory, and nothing can be made under it, even by root.
    let file = scratch.path().join("file");
    std::fs::write(&file, "").expect("write");
    let ha = logged("3000", file.join("csr_ha").to_str().expect("utf-8"), 20);

    assert!(ha.path("csr_ha.log.1").exists());
    let log = std::fs::read_to_string(ha.path("csr_ha.log")).expect("log");
    let warning = log
        .lines()
        .find(|l| l.contains("cannot archive the previous log"))
        .unwrap_or_else(|| panic!("no warning in {log}"));
    assert!(warning.contains(" WARN  "), "{warning}");
    assert!(
        warning.contains(&format!("cannot create {}", file.join("csr_ha").display())),
        "{warning}"
    );
    // Logging goes on after the failure.
    assert!(log.lines().count() > 1, "{log}");
}
