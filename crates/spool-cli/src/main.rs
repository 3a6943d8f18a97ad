//! The `spool` command. All of it lives in `spool::cli`, so an app can embed the same
//! command with its own job types registered (see `examples/embedded-cli`).

fn main() -> anyhow::Result<std::process::ExitCode> {
    Ok(spool::cli::main(spool::Registry::with_builtins())?)
}
