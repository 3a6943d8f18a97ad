//! One `work` process of a pool: how it is started, signalled and watched.

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Instant,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

/// The environment variable that tells a worker which supervisor started it.
pub(crate) const SUPERVISOR_PID: &str = "SPOOL_SUPERVISOR_PID";

/// How to start a worker process: a program and the arguments before `work`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerCommand {
    /// The program: this process's own binary unless the app names another.
    pub(crate) program: Option<PathBuf>,
    /// Arguments before Spool's own, e.g. `jobs` when the app mounts Spool's commands under
    /// `myapp jobs`.
    pub(crate) prefix: Vec<OsString>,
}

/// Everything a pool's processes are started with: the command, the global flags passed
/// through (`--config`, `--log-format`) and the store URL, in `SPOOL_URL` so that a password
/// in it does not show in the process list.
#[derive(Debug, Clone)]
pub(crate) struct Launcher {
    pub(crate) program: PathBuf,
    pub(crate) prefix: Vec<OsString>,
    pub(crate) global: Vec<OsString>,
    pub(crate) url: String,
}

impl Launcher {
    pub(crate) fn new(
        command: WorkerCommand,
        global: Vec<OsString>,
        url: String,
    ) -> std::io::Result<Self> {
        let program = match command.program {
            Some(p) => p,
            None => std::env::current_exe()?,
        };
        Ok(Launcher {
            program,
            prefix: command.prefix,
            global,
            url,
        })
    }

    /// Starts one process with `work_args`; its stderr is passed through line by line, the
    /// last line kept as the reason when it fails.
    pub(crate) fn spawn(&self, work_args: &[OsString]) -> std::io::Result<Proc> {
        let mut command = Command::new(&self.program);
        // A process group of its own: a Ctrl-C in the terminal or Supervisor's `stopasgroup`
        // reaches the supervisor alone, which passes one SIGTERM on; the worker taking the
        // group's signal and ours as two would hand its running jobs back at once.
        #[cfg(unix)]
        command.process_group(0);
        let mut child = command
            .args(&self.prefix)
            .args(&self.global)
            .args(work_args)
            .env("SPOOL_URL", &self.url)
            // The worker stops gracefully once this process is gone (see `work.rs`).
            .env(SUPERVISOR_PID, std::process::id().to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            // A supervisor that dies leaves its workers to finish their running jobs (they
            // notice within a second and stop), never mid-job by our drop.
            .kill_on_drop(false)
            .spawn()?;
        let last_line = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let last = last_line.clone();
            tokio::spawn(async move {
                let mut out = tokio::io::stderr();
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(mut line)) = lines.next_line().await {
                    if !line.trim().is_empty()
                        && let Ok(mut l) = last.lock()
                    {
                        l.clone_from(&line);
                    }
                    // Asynchronously: a slow reader of our stderr must not stall the loop.
                    line.push('\n');
                    let _ = out.write_all(line.as_bytes()).await;
                }
            });
        }
        Ok(Proc {
            pid: child.id().unwrap_or(0),
            child,
            started: Instant::now(),
            last_line,
            terms: 0,
        })
    }
}

/// A running `work` process.
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) pid: u32,
    child: Child,
    pub(crate) started: Instant,
    last_line: Arc<Mutex<String>>,
    /// SIGTERMs sent: one asks for a graceful stop, two hand running jobs back at once.
    pub(crate) terms: u32,
}

impl Proc {
    /// The exit status once the process has ended.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends SIGTERM (the worker stops taking jobs and finishes its running ones within its
    /// grace; a second one hands them back at once). Never SIGKILL: a job is not cut short
    /// before its timeout.
    pub(crate) fn terminate(&mut self) {
        self.terms += 1;
        #[cfg(unix)]
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        #[cfg(not(unix))]
        {
            let _ = self.child.start_kill();
        }
    }

    /// The last line the process wrote on stderr (its `error: ...` when it could not start).
    pub(crate) fn last_line(&self) -> String {
        self.last_line.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
