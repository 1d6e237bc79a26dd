//! `set_default_aad_app`: see `csr_ha::cmd::set_default_aad_app`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::set_default_aad_app::main()
}
