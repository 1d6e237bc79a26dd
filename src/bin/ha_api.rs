//! `ha_api`: see `csr_ha::cmd::ha_api`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::ha_api::main()
}
