//! The store conformance suite on the embedded SQLite store, each test on a fresh file.
#![cfg(feature = "sqlite")]

use std::sync::Arc;

async fn fresh() -> Option<Arc<dyn spool::Store>> {
    // The directory is leaked on purpose: the store keeps the file open for the whole test.
    let dir = tempfile::tempdir().expect("temp dir").keep();
    let url = format!("sqlite://{}", dir.join("spool.db").display());
    Some(spool::connect(&url).await.expect("open SQLite store"))
}

spool::conformance_tests!(fresh());
spool::workflow_conformance_tests!(fresh());
