//! Taking over from the original Python package (csr_ha 2.0.2) on a router: its cron line,
//! unit, running `ha_server.py`, `sock_file` and Python-format `node_file`.

use crate::util;

use util::machine::*;

#[test]
fn install_takes_over_from_the_original_python_package() {
    let m = Machine::new(true);
    let mut old = Legacy::new(&m);
    let pid = old.server.id();
    let legacy_unit = old.unit.clone();
    let install = |extra: &[&str]| {
        let out = m
            .command(Path::new("/bin/sh"))
            .env("CSR_HA_LEGACY_UNIT", &legacy_unit)
            .arg(repo().join("scripts/install.sh"))
            .args(["--prefix", m.prefix.to_str().expect("utf-8")])
            .args(["--bin-dir", bin_dir().to_str().expect("utf-8")])
            .args(["--scope", "user"])
            .args(extra)
            .output_retrying()
            .expect("install.sh");
        assert_ok(&out, "install.sh");
        stdout(&out)
    };

    // --dry-run names every piece and changes nothing.
    let before = m.snapshot(true);
    let cron_before = m.crontab();
    let said = install(&["--dry-run"]);
    for want in [
        format!(
            "dry-run: would stop, disable and remove the original's unit {}",
            old.unit.display()
        ),
        format!("dry-run: would stop the original's server, pid {pid}: sh "),
        format!(
            "dry-run: would remove the original's socket {}",
            m.ha_dir().join("sock_file").display()
        ),
        format!(
            "dry-run: would replace the original's cron line: {}",
            old.cron_line
        ),
        "node_file holds 2 node(s) in the original's format".to_string(),
        // No --cloud: the original's nodes have no cloud key, so they are AWS nodes.
        "cloud aws, as the original's node_file says".to_string(),
    ] {
        assert!(said.contains(&want), "no {want:?} in:\n{said}");
    }
    assert_eq!(diff(&before, &m.snapshot(true)), Vec::<String>::new());
    assert_eq!(m.crontab(), cron_before);
    assert!(old.running(), "--dry-run stopped the original's server");

    // The real run: each piece replaced or removed, reported in one line.
    let said = install(&["--service", "ha_api"]);
    for want in [
        format!(
            "replaced the original's unit: stopped, disabled and removed {}",
            old.unit.display()
        ),
        format!("stopped the original's server, pid {pid}: sh "),
        format!(
            "removed the original's socket {}",
            m.ha_dir().join("sock_file").display()
        ),
        format!("replaced the original's cron line: {}", old.cron_line),
        "kept the original's lines in".to_string(),
    ] {
        assert!(said.contains(&want), "no {want:?} in:\n{said}");
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while old.running() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!old.running(), "the original's server still runs");
    assert!(!old.unit.exists());
    assert!(!m.ha_dir().join("sock_file").exists());
    assert!(m
        .calls()
        .contains(&"systemctl disable --now csr_ha.service".to_string()));
    let cron = m.crontab().expect("crontab");
    assert!(cron.starts_with("0 1 * * * /usr/bin/backup.sh\n"), "{cron}");
    assert_eq!(cron.matches("revert_nodes.sh").count(), 1, "{cron}");
    assert!(cron.contains("# csr_ha: revert"), "{cron}");
    assert!(read(&m.home.join(".bashrc")).contains("alias create_node=create_node.py"));
    assert_eq!(read(&m.ha_dir().join("cloud")), "aws\n");

    // Our server (started by ha_api) imported the original's nodes.
    let out = m
        .command(&m.prefix.join("bin/show_node.py"))
        .env("CSR_HA_DIR", m.ha_dir())
        .args(["-i", "all"])
        .output_retrying()
        .expect("show_node.py");
    assert_ok(&out, "show_node.py -i all");
    let shown = stdout(&out);
    assert!(
        shown.contains("routeTableId   rtb-c8bb373c6f6e3b358")
            && shown.contains("routeTableId   rtb-0a1b2c3d4e5f60718"),
        "{shown}"
    );
    assert!(m.ha_dir().join("node_file.orig").is_file());

    // A second run finds nothing of the original left.
    let said = install(&["--service", "ha_api"]);
    assert!(!said.contains("original's"), "{said}");
}
