//! `set_params`: see `csr_ha::cmd::set_params`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::set_params::main()
}
