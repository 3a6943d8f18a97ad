//! `myapp`: an application binary that embeds Spool's whole CLI with its own job types, the way
//! `php artisan queue:work` runs a Laravel app's jobs.
//!
//! ```sh
//! cargo run -p embedded-cli -- dispatch resize_image --payload '{"image_id": 7, "width": 320}'
//! cargo run -p embedded-cli -- work --stop-when-empty
//! ```

use serde::{Deserialize, Serialize};
use spool::{Job, JobContext, JobResult, Registry};

/// The app's own job.
#[derive(Serialize, Deserialize)]
struct ResizeImage {
    image_id: u64,
    width: u32,
}

impl Job for ResizeImage {
    const NAME: &'static str = "resize_image";

    async fn handle(self, ctx: JobContext) -> JobResult {
        println!(
            "resizing image {} to {}px (job {}, attempt {})",
            self.image_id,
            self.width,
            ctx.id(),
            ctx.attempt()
        );
        Ok(())
    }
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    // The built-in jobs stay available next to the app's own.
    Ok(spool::cli::main(
        Registry::with_builtins().register::<ResizeImage>(),
    )?)
}
