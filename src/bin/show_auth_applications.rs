//! `show_auth_applications`: see `csr_ha::cmd::show_auth_applications`.

fn main() -> std::process::ExitCode {
    csr_ha::cmd::show_auth_applications::main()
}
