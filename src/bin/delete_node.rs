//! `delete_node`: see `csr_ha::cmd::delete_node`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::delete_node::main()
}
