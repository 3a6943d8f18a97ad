//! The `spool` command. All of it lives in the `spool_cli` library, so an app can embed the same
//! command with its own job types registered (see `examples/embedded-cli`).

fn main() -> std::process::ExitCode {
    spool_cli::main(spool::Registry::with_builtins())
}
