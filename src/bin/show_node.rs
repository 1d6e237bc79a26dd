//! `show_node`: see `csr_ha::cmd::show_node`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::show_node::main()
}
