//! The scripted run, as a person runs it: offline, against the in-process mock, every
//! document generated once even though it is posted twice.

use std::process::Command;

#[test]
fn the_scripted_run_generates_every_document_once_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_document-pipeline"))
        .arg("5")
        .current_dir(dir.path())
        .env_remove("OPENAI_BASE_URL")
        .env(
            "SPOOL_URL",
            format!("sqlite://{}", dir.path().join("pipeline.db").display()),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("posted 5 documents: 5 created; posted again: 0 created, 5 already there"),
        "{text}"
    );
    assert!(text.contains("5 of 5 documents finished"), "{text}");
    assert_eq!(text.matches(" done ").count(), 5, "{text}");
    assert!(text.contains("5 of 5 done, 0 failed"), "{text}");
}
