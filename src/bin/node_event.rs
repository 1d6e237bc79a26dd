//! `node_event`: see `csr_ha::cmd::node_event`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::node_event::main()
}
