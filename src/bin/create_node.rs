//! `create_node`: see `csr_ha::cmd::create_node`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::create_node::main()
}
