//! What a dry run costs: `node_event -i all -e revert --dry-run` beside a no-op `revert` of the
//! same 100 primary nodes in 3 `file` route tables (every route already via its node, so the
//! real revert writes nothing either), run alternately through a real `ha_server`.
//!
//! ```sh
//! cargo build --release --bins --examples && cargo run --release --example dry_run_bench [RUNS]
//! ```
//!
//! Prints the median and every run of each, and their ratio (target: the dry run within 1.5×
//! of the no-op revert). Everything happens in a temporary directory; nothing is contacted.

#[path = "support/mod.rs"]
mod support;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use csr_ha::paths::HaDir;

const NODES: u16 = 100;
const TABLES: u16 = 3;

fn route(i: u16) -> String {
    format!("10.{}.{}.0/24", 100 + i / 200, i % 200)
}

fn hop(i: u16) -> String {
    format!("10.0.{}.20", i % TABLES)
}

struct Bench {
    bins: std::path::PathBuf,
    dir: tempfile::TempDir,
    server: Option<std::process::Child>,
}

impl Bench {
    fn command(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bins.join(name));
        cmd.env("CSR_HA_DIR", self.dir.path())
            .env("CSR_HA_CLOUD", "file")
            .env("RUST_LOG", "warn");
        cmd
    }

    fn run(&self, line: &str) -> Result<(Duration, String), String> {
        let words = support::words(line);
        let started = Instant::now();
        let out = self
            .command(&words[0])
            .args(&words[1..])
            .output()
            .map_err(|e| format!("{line}: {e}"))?;
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!("{line} exited {:?}: {stdout}", out.status.code()));
        }
        Ok((took, stdout))
    }

    fn setup(&mut self) -> Result<(), String> {
        let tables = self.dir.path().join("route_tables");
        std::fs::create_dir_all(&tables).map_err(|e| e.to_string())?;
        for t in 0..TABLES {
            let routes: Vec<serde_json::Value> = (1..=NODES)
                .filter(|i| i % TABLES == t)
                .map(|i| serde_json::json!({"destination": route(i), "next_hop": hop(i)}))
                .collect();
            let text = serde_json::json!({ "routes": routes }).to_string();
            std::fs::write(tables.join(format!("t{t}.json")), text).map_err(|e| e.to_string())?;
        }
        let dir = HaDir::new(self.dir.path());
        support::start_server(self.command("ha_server"), &dir, &mut self.server)?;
        for i in 1..=NODES {
            self.run(&format!(
                "create_node -i {i} -t t{} -n {} -r {} -m primary",
                i % TABLES,
                hop(i),
                route(i)
            ))?;
        }
        Ok(())
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.command("ha_api").args(["-c", "stop"]).output();
        if let Some(child) = self.server.as_mut() {
            support::reap(child, Duration::from_secs(5));
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    support::nearest_rank(&v, 0.5).unwrap_or(f64::NAN)
}

fn main() -> ExitCode {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let result = (|| -> Result<(), String> {
        let mut bench = Bench {
            bins: support::bins(&["ha_server", "ha_api", "create_node", "node_event"])?,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
            server: None,
        };
        bench.setup()?;
        let (mut revert, mut dry) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t, out) = bench.run("node_event -i all -e revert")?;
            if out.lines().count() != usize::from(NODES) || !out.contains("no write") {
                return Err(format!("revert was not a no-op: {out}"));
            }
            revert.push(support::ms(t));
            let (t, out) = bench.run("node_event -i all -e revert --dry-run")?;
            if out.lines().count() != usize::from(NODES) {
                return Err(format!("dry run answered {} lines", out.lines().count()));
            }
            dry.push(support::ms(t));
        }
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.1}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (r, d) = (median(revert.clone()), median(dry.clone()));
        println!("{NODES} primary nodes in {TABLES} file tables, {runs} runs each, alternating");
        println!(
            "no-op revert:      median {r:.1} ms (runs: {})",
            list(&revert)
        );
        println!("revert --dry-run:  median {d:.1} ms (runs: {})", list(&dry));
        println!(
            "ratio dry run / no-op revert: {:.2} (target <= 1.5: {})",
            d / r,
            if d <= 1.5 * r { "met" } else { "NOT met" }
        );
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("400: dry_run_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
