//! The example app's own job, shared by its three binaries.

use serde::{Deserialize, Serialize};
use spool::{Job, JobContext, JobResult};

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
