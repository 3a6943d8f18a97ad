//! Spool's commands as one subcommand of the app's own clap command line:
//!
//! ```sh
//! cargo run -p embedded-cli --bin subcommand -- greet Ada
//! cargo run -p embedded-cli --bin subcommand -- jobs dispatch resize_image --payload '{"image_id": 7, "width": 320}'
//! cargo run -p embedded-cli --bin subcommand -- jobs work --stop-when-empty
//! cargo run -p embedded-cli --bin subcommand -- jobs supervise --config spool.toml
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The app's own command line.
#[derive(Parser)]
#[command(name = "myapp")]
struct MyApp {
    #[command(subcommand)]
    command: MyCommand,
}

#[derive(Subcommand)]
enum MyCommand {
    /// The app's own command.
    Greet {
        /// Who to greet.
        name: String,
    },
    /// Background jobs: `myapp jobs work`, `myapp jobs failed`, `myapp jobs retry all`, ...
    Jobs(spool_cli::Cli),
}

#[tokio::main]
async fn main() -> ExitCode {
    match MyApp::parse().command {
        MyCommand::Greet { name } => {
            println!("hello, {name}");
            ExitCode::SUCCESS
        }
        MyCommand::Jobs(cli) => {
            spool_cli::App::new(embedded_cli::registry())
                // `myapp jobs supervise` starts its workers as `myapp jobs work ...`.
                .worker_prefix(["jobs"])
                .run_with(cli)
                .await
        }
    }
}
