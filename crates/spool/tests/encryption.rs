//! Encrypted payloads (S-SEC-1, S-SEC-3) through a real worker on a temporary SQLite store:
//! round trip, key rotation, tampering, readable metadata, and no secret in the failed store
//! or the logs.
#![cfg(all(feature = "sqlite", feature = "encryption"))]

mod support;

use std::{
    io::Write,
    sync::{Arc, LazyLock, Mutex, Once},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use spool::{
    DispatchError, Envelope, Job, JobContext, JobError, JobResult, Payload, Registry, Spool, Store,
    Worker, WorkerConfig,
    encryption::{Key, Keyring},
};

/// Tokens each run saw, by job id.
static SEEN: LazyLock<Mutex<Vec<(String, String)>>> = LazyLock::new(Default::default);

fn seen(id: &str) -> Vec<String> {
    SEEN.lock()
        .unwrap()
        .iter()
        .filter(|(i, _)| i == id)
        .map(|(_, t)| t.clone())
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Charge {
    card_token: String,
    /// Fail for good (with a message that does not quote the token).
    #[serde(default)]
    decline: bool,
}

impl Job for Charge {
    const NAME: &'static str = "charge";
    const ENCRYPTED: bool = true;

    async fn handle(self, ctx: JobContext) -> JobResult {
        SEEN.lock()
            .unwrap()
            .push((ctx.id().to_string(), self.card_token.clone()));
        if self.decline {
            return Err(JobError::fail("card declined"));
        }
        Ok(())
    }
}

/// Registered under a name whose dispatched payloads will not decode into it.
#[derive(Debug, Serialize, Deserialize)]
struct Amount {
    cents: u64,
}

impl Job for Amount {
    const NAME: &'static str = "amount";
    const ENCRYPTED: bool = true;
    async fn handle(self, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// Dispatched as `amount` with a string where a number belongs.
#[derive(Debug, Serialize, Deserialize)]
struct WrongAmount {
    cents: String,
}

impl Job for WrongAmount {
    const NAME: &'static str = "amount";
    const ENCRYPTED: bool = true;
    async fn handle(self, _: JobContext) -> JobResult {
        Ok(())
    }
}

/// Everything any test logs, at every level, from every thread.
static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(Default::default);

#[derive(Clone)]
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| Sink)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// A secret no other test uses.
fn secret() -> String {
    format!("tok_secret_{}", spool::new_id().replace('-', ""))
}

async fn store() -> (Arc<dyn Store>, std::path::PathBuf) {
    capture_logs();
    support::sqlite_store().await
}

async fn work(store: &Arc<dyn Store>, keyring: Option<Keyring>) -> spool::WorkerExit {
    let config = WorkerConfig {
        queues: vec!["default".into(), "billing".into()],
        sleep: Duration::from_millis(50),
        until_done: true,
        keyring,
        ..WorkerConfig::default()
    };
    let registry = Registry::new().register::<Charge>().register::<Amount>();
    let worker = Worker::new(store.clone(), registry, config);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("worker finished in time")
        .expect("worker ran")
}

/// Every byte of the store's files, as text (the database and its WAL).
fn store_bytes(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_readable_metadata() {
    let (store, dir) = store().await;
    let keyring = Keyring::new(Key::generate());
    let spool = Spool::new(store.clone()).with_keyring(keyring.clone());
    let token = secret();
    let out = spool
        .dispatch(Charge {
            card_token: token.clone(),
            decline: false,
        })
        .on_queue("billing")
        .tries(4)
        .await
        .unwrap();

    // Metadata stays readable; the body does not.
    let stored = store.job(&out.id).await.unwrap().unwrap().envelope;
    assert!(!stored.contains(&token), "{stored}");
    let envelope = Envelope::decode(&stored).unwrap();
    assert_eq!(
        (
            envelope.id.as_str(),
            envelope.job.as_str(),
            envelope.queue.as_str()
        ),
        (out.id.as_str(), "charge", "billing")
    );
    assert_eq!(envelope.options.tries, Some(4));
    assert!(matches!(envelope.payload, Payload::Encrypted(_)));
    assert!(!stored.contains(r#""payload":"#));
    assert!(stored.contains(r#""payload_enc":""#));

    let exit = work(&store, Some(keyring)).await;
    assert_eq!((exit.completed, exit.failed), (1, 0));
    assert_eq!(seen(&out.id), vec![token.clone()]);
    assert!(!store_bytes(&dir).contains(&token));
    assert!(!logs().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_old_jobs_running_while_the_old_key_is_listed() {
    let (store, _dir) = store().await;
    let (old, new) = (Key::generate(), Key::generate());
    let spool = Spool::new(store.clone()).with_keyring(Keyring::new(old.clone()));
    let token = secret();
    let out = spool
        .dispatch(Charge {
            card_token: token.clone(),
            decline: false,
        })
        .await
        .unwrap();
    let exit = work(&store, Some(Keyring::new(new).with_previous(old))).await;
    assert_eq!((exit.completed, exit.failed), (1, 0));
    assert_eq!(seen(&out.id), [token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_key_fails_the_job_once_without_leaking_it() {
    let (store, dir) = store().await;
    let (old, new) = (Key::generate(), Key::generate());
    let spool = Spool::new(store.clone()).with_keyring(Keyring::new(old.clone()));
    let token = secret();
    let out = spool
        .dispatch(Charge {
            card_token: token.clone(),
            decline: false,
        })
        .tries(5)
        .await
        .unwrap();
    let exit = work(&store, Some(Keyring::new(new))).await;
    assert_eq!((exit.completed, exit.failed), (0, 1));
    assert!(seen(&out.id).is_empty(), "the handler never ran");
    let record = store.failed_job(&out.id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 1, "no retries burned");
    assert_eq!(
        record.error,
        format!(
            "payload decryption failed: no configured key matches (key id {}); set SPOOL_KEY / SPOOL_PREVIOUS_KEYS",
            old.id()
        )
    );
    // The failed record keeps the envelope as stored: sealed, metadata readable.
    assert!(!record.envelope.contains(&token));
    assert!(
        Envelope::decode(&record.envelope)
            .unwrap()
            .payload
            .is_encrypted()
    );
    assert!(!store_bytes(&dir).contains(&token));
    assert!(!logs().contains(&token));
}

/// A worker whose registry has encrypted job types but that has no key would fail every such
/// job for good, draining its queues into the failed store: it refuses to start instead, and
/// the jobs wait for a worker with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_keys_for_its_encrypted_job_types_refuses_to_start() {
    let (store, _dir) = store().await;
    let key = Key::generate();
    let spool = Spool::new(store.clone()).with_keyring(Keyring::new(key.clone()));
    let out = spool
        .dispatch(Charge {
            card_token: secret(),
            decline: false,
        })
        .await
        .unwrap();
    if std::env::var_os("SPOOL_KEY").is_some() {
        return; // The worker would read this environment's key.
    }
    let registry = Registry::new().register::<Charge>().register::<Amount>();
    let err = Worker::new(store.clone(), registry, WorkerConfig::default())
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid worker setting: job types `amount`, `charge` are encrypted but no key is configured: set SPOOL_KEY (and SPOOL_PREVIOUS_KEYS while rotating) or give the worker a Keyring"
    );
    assert!(store.job(&out.id).await.unwrap().is_some(), "the job waits");
    assert_eq!(store.stats().await.unwrap().failed, 0);
}

/// A plaintext payload for an encrypted job type (written past Spool's dispatch) is refused
/// with the reason, not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_payload_for_an_encrypted_job_type_is_refused() {
    let (store, _dir) = store().await;
    let keyring = Keyring::new(Key::generate());
    let plain = Envelope::new("charge", "default", serde_json::json!({"card_token": "t"}));
    Spool::new(store.clone())
        .dispatch_envelopes(vec![(plain.clone(), Duration::ZERO)])
        .await
        .unwrap();
    let exit = work(&store, Some(keyring)).await;
    assert_eq!((exit.completed, exit.failed), (0, 1));
    assert!(seen(&plain.id).is_empty(), "the handler never ran");
    let record = store.failed_job(&plain.id).await.unwrap().unwrap();
    assert_eq!(
        record.error,
        "job `charge` is encrypted but its payload is in plaintext: dispatch it through Spool (or `spool dispatch` of an app that registers it), which seals it"
    );
}

/// A periodic job of an encrypted type runs: its tick's id is set before the payload is
/// sealed (the id is bound into the sealed data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_periodic_jobs_run() {
    let (store, _dir) = store().await;
    let keyring = Keyring::new(Key::generate());
    let token = secret();
    let every_second = spool::Periodic::new(
        "charge",
        "* * * * * *",
        Charge {
            card_token: token.clone(),
            decline: false,
        },
    )
    .unwrap();
    let config = WorkerConfig {
        max_time: Some(Duration::from_millis(2500)),
        sleep: Duration::from_millis(20),
        schedules: vec![every_second],
        keyring: Some(keyring),
        ..WorkerConfig::default()
    };
    let registry = Registry::new().register::<Charge>();
    let exit = Worker::new(store.clone(), registry, config)
        .run()
        .await
        .unwrap();
    assert_eq!(exit.failed, 0, "{exit:?}");
    assert!(exit.completed >= 1, "{exit:?}");
    let ran = SEEN
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == token)
        .count();
    assert_eq!(ran as u64, exit.completed);
}

/// A batch's progress callback of an encrypted type runs once per job: each job carries its
/// own callback, sealed under its final id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_batch_progress_callbacks_run() {
    let (store, _dir) = store().await;
    let keyring = Keyring::new(Key::generate());
    let spool = Spool::new(store.clone()).with_keyring(keyring.clone());
    let token = secret();
    let charge = |card_token: &str| Charge {
        card_token: card_token.to_string(),
        decline: false,
    };
    spool
        .batch("charges")
        .jobs([charge("a"), charge("b")])
        .unwrap()
        .progress(charge(&token))
        .unwrap()
        .dispatch()
        .await
        .unwrap();
    let exit = work(&store, Some(keyring)).await;
    assert_eq!((exit.completed, exit.failed), (4, 0), "{exit:?}");
    let ran = SEEN
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, t)| *t == token)
        .count();
    assert_eq!(ran, 2, "one progress callback per job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_and_moving_ciphertext_fail_the_job_at_once() {
    let (store, _dir) = store().await;
    let key = Key::generate();
    let keyring = Keyring::new(key.clone());
    let spool = Spool::new(store.clone()).with_keyring(keyring.clone());
    let original = spool
        .dispatch(Charge {
            card_token: secret(),
            decline: false,
        })
        .delay(Duration::from_secs(3600))
        .await
        .unwrap();
    let stored =
        Envelope::decode(&store.job(&original.id).await.unwrap().unwrap().envelope).unwrap();
    assert!(store.delete_job(&original.id).await.unwrap());
    let Payload::Encrypted(sealed) = &stored.payload else {
        panic!("sealed")
    };

    // One flipped character of ciphertext, same job.
    let mut tampered = stored.clone();
    let mut chars: Vec<char> = sealed.chars().collect();
    let at = chars.len() - 5;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    tampered.payload = Payload::Encrypted(chars.into_iter().collect());
    // The intact ciphertext copied into another job.
    let mut moved = stored.clone();
    moved.id = "another-job".into();
    spool
        .dispatch_envelopes(vec![(tampered, Duration::ZERO), (moved, Duration::ZERO)])
        .await
        .unwrap();

    let exit = work(&store, Some(keyring)).await;
    assert_eq!((exit.completed, exit.failed), (0, 2));
    let expected = format!(
        "payload decryption failed: the payload does not authenticate with key {}: it was altered, or copied from another job",
        key.id()
    );
    for id in [original.id.as_str(), "another-job"] {
        let record = store.failed_job(id).await.unwrap().unwrap();
        assert_eq!(
            (record.error.as_str(), record.attempts),
            (expected.as_str(), 1)
        );
        assert!(seen(id).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_failures_and_logs() {
    let (store, dir) = store().await;
    let keyring = Keyring::new(Key::generate());
    let spool = Spool::new(store.clone()).with_keyring(keyring.clone());
    // Declined by the handler: the failed record holds the sealed envelope only.
    let token = secret();
    let declined = spool
        .dispatch(Charge {
            card_token: token.clone(),
            decline: true,
        })
        .await
        .unwrap();
    // A payload that does not decode: serde would quote the value; the error must not.
    let wrong = secret();
    let mismatched = spool
        .dispatch(WrongAmount {
            cents: wrong.clone(),
        })
        .await
        .unwrap();
    let exit = work(&store, Some(keyring)).await;
    assert_eq!(exit.failed, 2);

    let record = store.failed_job(&declined.id).await.unwrap().unwrap();
    assert_eq!(record.error, "card declined");
    assert!(!record.envelope.contains(&token));
    let record = store.failed_job(&mismatched.id).await.unwrap().unwrap();
    assert!(
        record
            .error
            .starts_with("payload does not match job `amount` at line 1 column "),
        "{}",
        record.error
    );
    assert!(
        record
            .error
            .ends_with("(details withheld: the payload is encrypted)")
    );
    assert!(!record.envelope.contains(&wrong));

    let files = store_bytes(&dir);
    let logs = logs();
    for s in [&token, &wrong] {
        assert!(!files.contains(s.as_str()), "secret in the store files");
        assert!(!logs.contains(s.as_str()), "secret in the logs");
    }
    assert!(logs.contains("card declined"), "the capture works");
}

#[tokio::test]
async fn dispatching_an_encrypted_job_without_a_key_is_refused() {
    let (store, _dir) = store().await;
    if std::env::var_os("SPOOL_KEY").is_some() {
        return;
    }
    let err = Spool::new(store.clone())
        .dispatch(Charge {
            card_token: secret(),
            decline: false,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::NoKey { .. }));
    assert_eq!(
        err.to_string(),
        "job `charge` is encrypted but no key is configured: set SPOOL_KEY (generate one with `openssl rand -base64 32`) or give the handle a Keyring"
    );
    assert_eq!(store.stats().await.unwrap().queues.len(), 0);

    // Fake handles store nothing, so they need no key and record the plain job.
    let (fake, recorder) = Spool::fake();
    fake.dispatch(Charge {
        card_token: "t".into(),
        decline: false,
    })
    .await
    .unwrap();
    assert_eq!(recorder.dispatched::<Charge>().len(), 1);
}
