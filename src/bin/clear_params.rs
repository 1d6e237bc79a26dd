//! `clear_params`: see `csr_ha::cmd::clear_params`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::clear_params::main()
}
