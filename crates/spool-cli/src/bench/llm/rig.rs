//! The LLM bench's rig: a `spool mock-llm` process, a `spool.toml` naming it, worker
//! processes, and the mock's request log.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use super::super::scratch::Scratch;
use crate::CliError;

/// What one scenario runs on: the mock's answer delay and limits (the configuration names
/// the same limits), and the worker processes.
pub(super) struct Setup {
    pub(super) latency: &'static str,
    pub(super) rpm: u64,
    pub(super) tpm: Option<u64>,
    pub(super) workers: usize,
    pub(super) concurrency: usize,
}

/// A scratch store, a mock, a configuration naming it, and worker processes, started.
pub(super) struct Rig {
    pub(super) scratch: Scratch,
    pub(super) mock: Mock,
    pub(super) pool: Workers,
    pub(super) spool: spool::Spool,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// Starts everything and waits until the workers have registered.
    pub(super) async fn start(
        url: Option<&str>,
        run: usize,
        setup: &Setup,
    ) -> Result<Rig, CliError> {
        let scratch = Scratch::new(url, run).await?;
        let dir = tempfile::tempdir()?;
        let mut flags = vec!["--latency".to_string(), setup.latency.to_string()];
        flags.extend(["--rpm".to_string(), setup.rpm.to_string()]);
        if let Some(tpm) = setup.tpm {
            flags.extend(["--tpm".to_string(), tpm.to_string()]);
        }
        let mock = Mock::start(dir.path(), &flags).await?;
        let config = config(dir.path(), &mock, setup.rpm, setup.tpm)?;
        let mut pool = Workers::new(&scratch.url, &config, setup.concurrency);
        for _ in 0..setup.workers {
            pool.spawn()?;
        }
        wait_workers(&*scratch.store, setup.workers).await?;
        let spool = spool::Spool::new(scratch.store.clone());
        Ok(Rig {
            scratch,
            mock,
            pool,
            spool,
            _dir: dir,
        })
    }

    /// Stops the workers and the mock; the store and what the mock logged.
    pub(super) async fn finish(self) -> (Scratch, Vec<Value>) {
        self.pool.stop().await;
        let requests = self.mock.requests();
        self.mock.stop().await;
        (self.scratch, requests)
    }
}

/// The queue the bench's llm jobs go to: the built-in job's own.
pub(super) const QUEUE: &str = spool::DEFAULT_QUEUE;

/// A running `spool mock-llm`.
pub(super) struct Mock {
    child: Child,
    pub(super) addr: String,
    log: PathBuf,
}

impl Mock {
    /// Starts the mock with `flags`, logging to a file in `dir`.
    pub(super) async fn start(dir: &Path, flags: &[String]) -> Result<Mock, CliError> {
        let log = dir.join(format!("mock-{}.jsonl", fastrand::u32(..)));
        let mut child = Command::new(std::env::current_exe()?)
            .args(["mock-llm", "--bind", "127.0.0.1:0", "--log"])
            .arg(&log)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).await?;
        let addr = line
            .trim()
            .strip_prefix("mock-llm listening on http://")
            .and_then(|rest| rest.strip_suffix("/v1"))
            .ok_or_else(|| CliError::Usage(format!("spool mock-llm said `{}`", line.trim())))?
            .to_string();
        Ok(Mock { child, addr, log })
    }

    /// Its OpenAI-compatible base URL.
    pub(super) fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Makes the next requests get `responses` (the mock's script format).
    pub(super) async fn script(&self, responses: &Value) -> Result<(), CliError> {
        let body = responses.to_string();
        let request = format!(
            "POST /mock/script HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(&self.addr).await?;
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
        let mut reply = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut reply).await?;
        if !reply.starts_with("HTTP/1.1 2") {
            return Err(CliError::Usage(format!(
                "the mock refused a script: {reply}"
            )));
        }
        Ok(())
    }

    /// Every request it logged, in arrival order.
    pub(super) fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut all: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        all.sort_by(|a, b| at(a).total_cmp(&at(b)));
        all
    }

    pub(super) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A logged request's arrival, ms since the epoch.
pub(super) fn at(request: &Value) -> f64 {
    request["at_ms"].as_f64().unwrap_or_default()
}

/// Writes a configuration naming provider `mock` at `mock` with these limits.
fn config(dir: &Path, mock: &Mock, rpm: u64, tpm: Option<u64>) -> Result<PathBuf, CliError> {
    let path = dir.join(format!("spool-{}.toml", fastrand::u32(..)));
    let mut text = format!(
        "[[llm.provider]]\nname = \"mock\"\nbase_url = \"{}\"\nrpm = {rpm}\n",
        mock.base_url()
    );
    if let Some(tpm) = tpm {
        text.push_str(&format!("tpm = {tpm}\n"));
    }
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Worker processes serving the bench queue.
pub(super) struct Workers {
    url: String,
    config: PathBuf,
    concurrency: usize,
    pub(super) children: Vec<Child>,
}

impl Workers {
    pub(super) fn new(url: &str, config: &Path, concurrency: usize) -> Workers {
        Workers {
            url: url.to_string(),
            config: config.to_path_buf(),
            concurrency,
            children: Vec::new(),
        }
    }

    /// Starts one more worker process.
    pub(super) fn spawn(&mut self) -> Result<(), CliError> {
        // `SPOOL_BENCH_LOGS=DIR` keeps each worker's log there (for looking into a run).
        let logs = std::env::var_os("SPOOL_BENCH_LOGS").map(PathBuf::from);
        let stderr = match &logs {
            Some(dir) => Stdio::from(std::fs::File::create(
                dir.join(format!("worker-{}.log", fastrand::u32(..))),
            )?),
            None => Stdio::null(),
        };
        let child = Command::new(std::env::current_exe()?)
            .arg("--url")
            .arg(&self.url)
            .arg("--config")
            .arg(&self.config)
            .args(["work", "--allow", "llm", "--queue", QUEUE, "--tries", "1"])
            .args(["--lease", "2s", "--concurrency"])
            .arg(self.concurrency.to_string())
            .env("SPOOL_LOG", if logs.is_some() { "debug" } else { "error" })
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()?;
        self.children.push(child);
        Ok(())
    }

    /// Kills one at random with SIGKILL and starts another in its place.
    pub(super) async fn kill_one(&mut self) -> Result<(), CliError> {
        if self.children.is_empty() {
            return Ok(());
        }
        let i = fastrand::usize(..self.children.len());
        let mut victim = self.children.swap_remove(i);
        victim.start_kill()?;
        let _ = victim.wait().await;
        self.spawn()
    }

    pub(super) async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.start_kill();
        }
        for child in &mut self.children {
            let _ = child.wait().await;
        }
    }
}

/// Waits until `n` jobs are done (completed or failed), at most `limit`; the seconds it took.
pub(super) async fn wait_done(
    store: &dyn spool::Store,
    n: u64,
    limit: Duration,
) -> Result<(f64, u64), CliError> {
    let start = std::time::Instant::now();
    loop {
        let stats = store.stats().await?;
        if stats.processed + stats.failed >= n {
            return Ok((start.elapsed().as_secs_f64(), stats.failed));
        }
        if start.elapsed() > limit {
            return Err(CliError::Usage(format!(
                "the llm bench gave up after {limit:?}: {} of {n} done",
                stats.processed
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `n` workers are registered.
async fn wait_workers(store: &dyn spool::Store, n: usize) -> Result<(), CliError> {
    for _ in 0..600 {
        if store.stats().await?.workers.len() >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(CliError::Usage(format!("{n} bench workers did not start")))
}
