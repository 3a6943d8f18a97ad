//! `myapp`: an application binary that embeds Spool's whole CLI with its own job types, the way
//! `php artisan queue:work` runs a Laravel app's jobs.
//!
//! ```sh
//! cargo run -p embedded-cli -- dispatch resize_image --payload '{"image_id": 7, "width": 320}'
//! cargo run -p embedded-cli -- work --stop-when-empty
//! ```
//!
//! Two more forms live in `src/bin/`: inside the app's own `#[tokio::main]` with its own worker
//! pieces (`with-runtime`), and as a subcommand of the app's own clap command line
//! (`subcommand`).

fn main() -> std::process::ExitCode {
    // The built-in jobs stay available next to the app's own, with the app's state.
    spool_cli::main(embedded_cli::registry())
}
