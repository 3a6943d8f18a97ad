//! Spool's CLI inside the app's own `#[tokio::main]`, with the app's own worker pieces: a
//! periodic job, an event listener and a longer failed-job retention.
//!
//! ```sh
//! cargo run -p embedded-cli --bin with-runtime -- work --max-time 2m
//! ```

use std::time::Duration;

use embedded_cli::ResizeImage;
use spool::{Periodic, events::Events};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The app's own set-up runs first, on the same runtime.
    let events = Events::new();
    events.on(|event| {
        if let Some(job) = event.job() {
            eprintln!("{} {} ({})", event.name(), job.name, job.id);
        }
    });
    let thumbnails = match Periodic::new(
        "nightly-thumbnails",
        "0 3 * * *",
        ResizeImage {
            image_id: 0,
            width: 128,
        },
    ) {
        Ok(periodic) => periodic,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    spool_cli::App::new(embedded_cli::registry())
        .periodic(thumbnails)
        .events(events)
        .configure_worker(|config| config.failed_retention = Duration::from_secs(30 * 86_400))
        .run()
        .await
}
