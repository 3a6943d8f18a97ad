//! Checks of the control part of the contract ([`ControlStore`](spool::store::ControlStore)):
//! paused queues, quiet workers and the quiet and terminate epochs.

use spool::store::{ControlEpoch, ControlKind};

use crate::Fixture;

/// Pausing and resuming say which queues changed; marks keep when they were set; a long
/// queue name fits; quiet marks are cleared together; epochs only move forward.
pub async fn pause_quiet_and_terminate_are_recorded(fixture: &dyn Fixture) {
    let store = fixture.store().await;
    let empty = store.control().await.unwrap();
    assert!(empty.paused.is_empty() && empty.quiet.is_empty());
    assert_eq!((empty.quiet_epoch, empty.terminate_epoch), (0, 0));

    let long = format!("q{}", "x".repeat(127));
    let queues = ["mail".to_string(), long.clone()];
    assert_eq!(store.pause(&queues).await.unwrap(), queues);
    assert_eq!(
        store.pause(&["mail".to_string()]).await.unwrap(),
        Vec::<String>::new(),
        "pausing a paused queue changes nothing"
    );
    let control = store.control().await.unwrap();
    assert!(control.is_paused("mail") && control.is_paused(&long));
    assert!(!control.is_paused("default"));
    assert!(control.paused["mail"] > 0, "the pause keeps its time");

    assert_eq!(
        store
            .resume(&["mail".to_string(), "never".to_string()])
            .await
            .unwrap(),
        ["mail"]
    );
    assert!(!store.control().await.unwrap().is_paused("mail"));

    store
        .quiet(&["w1".to_string(), "w2".to_string()])
        .await
        .unwrap();
    let quiet: Vec<String> = store.control().await.unwrap().quiet.into_keys().collect();
    assert_eq!(quiet, ["w1", "w2"]);
    assert_eq!(store.clear_marks(ControlKind::Quiet).await.unwrap(), 2);
    let control = store.control().await.unwrap();
    assert!(control.quiet.is_empty());
    assert!(
        control.is_paused(&long),
        "clearing quiet marks leaves pauses"
    );

    store.quiet(&[]).await.unwrap();
    let first = store.control().await.unwrap().quiet_epoch;
    assert!(first > 0);
    // The same clock reading twice still moves the epoch on.
    let again = store.bump_epoch(ControlEpoch::Quiet, first).await.unwrap();
    assert!(again > first);
    let terminate = store.terminate().await.unwrap();
    let control = store.control().await.unwrap();
    assert_eq!(
        (control.quiet_epoch, control.terminate_epoch),
        (again, terminate)
    );
    assert!(terminate > 0);
}

/// Records are written, replaced, listed by kind (kinds apart, marks apart) and deleted.
pub async fn records_are_kept_by_kind_and_name(fixture: &dyn Fixture) {
    use spool::store::RecordKind;
    let store = fixture.store().await;
    assert!(
        store
            .records(RecordKind::Supervisor)
            .await
            .unwrap()
            .is_empty()
    );
    let info = r#"{"host":"h","pid":1,"pools":[]}"#;
    store
        .put_record(RecordKind::Supervisor, "s1", 10, Some(info))
        .await
        .unwrap();
    store
        .put_record(RecordKind::Supervisor, "s1", 20, Some(info))
        .await
        .unwrap();
    store
        .put_record(RecordKind::RunTime, "mail", 1500, None)
        .await
        .unwrap();
    store.pause(&["s1".to_string()]).await.unwrap();
    let supervisors = store.records(RecordKind::Supervisor).await.unwrap();
    assert_eq!(supervisors.len(), 1, "{supervisors:?}");
    assert_eq!(
        (
            supervisors[0].name.as_str(),
            supervisors[0].value,
            supervisors[0].info.as_deref()
        ),
        ("s1", 20, Some(info)),
        "a record is replaced whole"
    );
    let runtimes = store.records(RecordKind::RunTime).await.unwrap();
    assert_eq!(
        (
            runtimes.len(),
            runtimes[0].value,
            runtimes[0].info.as_deref()
        ),
        (1, 1500, None)
    );
    let control = store.control().await.unwrap();
    assert_eq!(control.paused.len(), 1, "records are not marks");
    assert!(
        store
            .delete_record(RecordKind::Supervisor, "s1")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_record(RecordKind::Supervisor, "s1")
            .await
            .unwrap()
    );
    assert!(
        store
            .records(RecordKind::Supervisor)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store.control().await.unwrap().is_paused("s1"),
        "a mark of the same name stays"
    );
}
