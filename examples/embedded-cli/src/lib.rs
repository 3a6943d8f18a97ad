//! The example app's own job, shared by its three binaries.

use serde::{Deserialize, Serialize};
use spool::{Job, JobContext, JobResult, Registry};

/// The app's settings, shared by every job as app state (`ctx.state::<Settings>()`), the way
/// an app would share a database pool or an HTTP client.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Widths above this are clamped.
    pub max_width: u32,
}

/// The registry every binary of the app uses: the built-in jobs, the app's own, and its
/// state, registered once.
pub fn registry() -> Registry {
    Registry::with_builtins()
        .register::<ResizeImage>()
        .with_state(Settings { max_width: 2048 })
}

/// The app's own job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResizeImage {
    /// Which image.
    pub image_id: u64,
    /// The width to resize it to, in pixels.
    pub width: u32,
}

impl Job for ResizeImage {
    const NAME: &'static str = "resize_image";

    async fn handle(self, ctx: JobContext) -> JobResult {
        let settings = ctx.state::<Settings>()?;
        println!(
            "resizing image {} to {}px (job {}, attempt {})",
            self.image_id,
            self.width.min(settings.max_width),
            ctx.id(),
            ctx.attempt()
        );
        Ok(())
    }
}
