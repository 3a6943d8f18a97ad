//! `ctx.llm()` and `ctx.step()` through a real worker on SQLite against the offline mock: a
//! retried job replays the calls it paid for and the steps it finished (and they are deleted
//! once it completes), an encrypted job's recordings are sealed like its payload, and a worker
//! process killed with SIGKILL after paying leaves calls the next worker replays.
#![cfg(all(feature = "sqlite", feature = "llm", feature = "encryption"))]

use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::json;
use spool::{
    Backoff, Job, JobContext, JobError, JobOptions, JobResult, Registry, Spool, Store, Worker,
    WorkerConfig,
    encryption::{Key, Keyring},
    llm::{Llm, ProviderConfig},
};
use spool_mock_llm::{MockConfig, MockLlm, RunningMock};

/// How often the `analyse` step's body ran, by title.
static ANALYSED: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

#[derive(Debug, Serialize, Deserialize)]
struct Pipeline {
    title: String,
}

async fn pipeline(ctx: &JobContext, title: &str) -> JobResult {
    let outline: String = ctx
        .step("analyse", || async {
            *ANALYSED.lock().unwrap().entry(title.to_string()).or_default() += 1;
            let answer = ctx
                .llm()
                .chat(json!({"model": "gpt-test", "messages": [{"role": "user", "content": format!("Outline {title}")}], "max_tokens": 30}))
                .await?;
            Ok(answer.content)
        })
        .await?;
    let draft = ctx
        .llm()
        .chat(json!({"model": "gpt-test", "messages": [{"role": "user", "content": format!("Write {title} from {outline}")}], "max_tokens": 60}))
        .await?;
    if ctx.attempt() == 1 {
        // As if the worker died after paying for both calls.
        return Err(JobError::retry("crashed after paying"));
    }
    assert!(draft.replayed, "the second attempt replays the paid answer");
    Ok(())
}

impl Job for Pipeline {
    const NAME: &'static str = "pipeline";
    fn options(&self) -> JobOptions {
        JobOptions {
            tries: Some(2),
            backoff: Some(Backoff::List(vec![Duration::ZERO])),
            ..JobOptions::default()
        }
    }
    async fn handle(self, ctx: JobContext) -> JobResult {
        pipeline(&ctx, &self.title).await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SecretPipeline {
    title: String,
}

impl Job for SecretPipeline {
    const NAME: &'static str = "secret_pipeline";
    const ENCRYPTED: bool = true;
    fn options(&self) -> JobOptions {
        Pipeline {
            title: String::new(),
        }
        .options()
    }
    async fn handle(self, ctx: JobContext) -> JobResult {
        pipeline(&ctx, &self.title).await?;
        // A failed job keeps its records for an operator's `spool retry`.
        Err(JobError::fail("kept for a retry"))
    }
}

async fn setup() -> (
    RunningMock,
    Llm,
    std::sync::Arc<dyn Store>,
    tempfile::TempDir,
) {
    let mock = MockLlm::start(MockConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut provider = ProviderConfig::from_env();
    provider.name = "mock".into();
    provider.base_url = mock.base_url();
    provider.api_key_env = None;
    let llm = Llm::new(vec![provider]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = spool::connect(&format!("sqlite://{}", dir.path().join("llm.db").display()))
        .await
        .unwrap();
    (mock, llm, store, dir)
}

fn worker_config(keyring: Option<Keyring>) -> WorkerConfig {
    WorkerConfig {
        until_done: true,
        sleep: Duration::from_millis(20),
        keyring,
        ..WorkerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_job_replays_its_paid_calls_and_finished_steps() {
    let (mock, llm, store, _dir) = setup().await;
    Spool::new(store.clone())
        .dispatch(Pipeline {
            title: "the guide".into(),
        })
        .await
        .unwrap();
    let registry = Registry::new().register::<Pipeline>().with_state(llm);
    Worker::new(store.clone(), registry, worker_config(None))
        .run()
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.processed, stats.failed), (1, 0));
    assert_eq!(
        ANALYSED.lock().unwrap()["the guide"],
        1,
        "the finished step did not run again"
    );
    assert_eq!(mock.requests().len(), 2, "two calls paid for, none twice");
    for prefix in ["llm:call:", "step:"] {
        assert_eq!(
            store.kv_list(prefix, 10).await.unwrap(),
            Vec::new(),
            "a completed job's records are deleted once its completion is written"
        );
    }
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_jobs_recordings_and_steps_are_sealed() {
    let (mock, llm, store, _dir) = setup().await;
    let keyring = Keyring::new(Key::generate());
    Spool::new(store.clone())
        .with_keyring(keyring.clone())
        .dispatch(SecretPipeline {
            title: "the secret plan".into(),
        })
        .await
        .unwrap();
    let registry = Registry::new().register::<SecretPipeline>().with_state(llm);
    Worker::new(store.clone(), registry, worker_config(Some(keyring)))
        .run()
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().failed, 1);
    assert_eq!(mock.requests().len(), 2, "replayed from sealed recordings");
    let kept: Vec<_> = [
        store.kv_list("llm:call:", 10).await.unwrap(),
        store.kv_list("step:", 10).await.unwrap(),
    ]
    .concat();
    assert_eq!(kept.len(), 3, "two recordings and one step: {kept:?}");
    for (name, entry) in kept {
        assert!(entry.value.starts_with("sealed:"), "{name} is not sealed");
        assert!(
            !entry.value.contains("queue") && !entry.value.contains("secret plan"),
            "{name}"
        );
    }
    mock.shutdown().await;
}

/// Set in a copy of this test binary started as a worker process: the store's path, the
/// mock's URL, and whether the job hangs after paying for both of its calls.
const CHILD_STORE: &str = "SPOOL_LLM_CHILD_STORE";
const CHILD_MOCK: &str = "SPOOL_LLM_CHILD_MOCK";
const CHILD_HANG: &str = "SPOOL_LLM_CHILD_HANG";

/// Two paid calls, then (in the first worker process) a hang until it is killed.
#[derive(Debug, Serialize, Deserialize)]
struct TwoCalls {
    title: String,
}

impl Job for TwoCalls {
    const NAME: &'static str = "two_calls";
    async fn handle(self, ctx: JobContext) -> JobResult {
        for part in ["outline", "draft"] {
            ctx.llm()
                .chat(json!({"model": "gpt-test", "messages": [{"role": "user", "content": format!("{part} of {}", self.title)}], "max_tokens": 20}))
                .await?;
        }
        if std::env::var(CHILD_HANG).is_ok() {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Ok(())
    }
}

/// The worker process the kill test starts (a no-op when run as a test of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker_process() {
    let (Ok(path), Ok(mock)) = (std::env::var(CHILD_STORE), std::env::var(CHILD_MOCK)) else {
        return;
    };
    let store = spool::connect(&format!("sqlite://{path}")).await.unwrap();
    let mut provider = ProviderConfig::from_env();
    provider.name = "mock".into();
    provider.base_url = mock;
    provider.api_key_env = None;
    let registry = Registry::new()
        .register::<TwoCalls>()
        .with_state(Llm::new(vec![provider]).unwrap());
    let config = WorkerConfig {
        lease: Duration::from_secs(1),
        sleep: Duration::from_millis(20),
        max_time: Some(Duration::from_secs(60)),
        ..WorkerConfig::default()
    };
    Worker::new(store, registry, config).run().await.unwrap();
}

/// Polls `done` every 20 ms until it holds, for at most 30 s.
async fn until<F: Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A worker process killed with SIGKILL after paying for a job's two calls: the worker that
/// takes the job over replays both from the recordings, and the provider sees no request
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_paid_calls_are_replayed_not_sent_again() {
    let (mock, _llm, store, dir) = setup().await;
    let path = dir.path().join("llm.db");
    Spool::new(store.clone())
        .dispatch(TwoCalls {
            title: "the report".into(),
        })
        .await
        .unwrap();
    let start = |hang: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child_worker_process", "--nocapture"])
            .env(CHILD_STORE, &path)
            .env(CHILD_MOCK, mock.base_url())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if hang {
            cmd.env(CHILD_HANG, "1");
        }
        cmd.spawn().unwrap()
    };
    let mut first = start(true);
    until("both calls recorded", || async {
        store.kv_list("llm:call:", 10).await.unwrap().len() == 2
    })
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(mock.requests().len(), 2);

    let mut second = start(false);
    until("the job completed in the second worker", || async {
        store.stats().await.unwrap().processed == 1
    })
    .await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(
        mock.requests().len(),
        2,
        "the second worker replayed both paid calls and sent nothing"
    );
    assert_eq!(store.stats().await.unwrap().failed, 0);
    mock.shutdown().await;
}
