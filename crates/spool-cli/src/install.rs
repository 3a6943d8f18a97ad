//! `spool install systemd|supervisor`: a ready unit or program section that runs
//! `spool supervise` as the process manager expects (queue-semantics.md S-PROC-1..6).

use std::{path::Path, process::ExitCode, time::Duration};

use clap::{Args, ValueEnum};

use crate::{CliError, supervise::SupervisorSpec};

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// The process manager: `systemd` or `supervisor`.
    #[arg(value_enum)]
    target: Target,
    /// The user the supervisor runs as.
    #[arg(long)]
    user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// A systemd service unit (`Type=notify`).
    Systemd,
    /// A Supervisor (supervisord) program section.
    Supervisor,
}

/// How long systemd may wait for a heartbeat before it restarts the supervisor; it notifies
/// at half of it.
const WATCHDOG: Duration = Duration::from_secs(30);
/// Time on top of the largest grace for the workers to hand their jobs back and exit.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// What the unit needs to know: the binary, the prefix before Spool's commands, the
/// configuration and the store URL passed on the command line (if any).
#[derive(Debug)]
pub(crate) struct UnitInputs<'a> {
    pub(crate) program: &'a Path,
    pub(crate) prefix: &'a [std::ffi::OsString],
    pub(crate) config: Option<&'a Path>,
    pub(crate) url: Option<&'a str>,
    pub(crate) spec: &'a SupervisorSpec,
}

pub(crate) fn run(a: InstallArgs, target: UnitInputs<'_>) -> Result<ExitCode, CliError> {
    let text = match a.target {
        Target::Systemd => systemd(&target, a.user.as_deref()),
        Target::Supervisor => supervisor(&target, a.user.as_deref()),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The `spool supervise` command line with absolute paths.
fn command_line(t: &UnitInputs<'_>) -> String {
    let mut parts = vec![quote(&absolute(t.program).display().to_string())];
    parts.extend(t.prefix.iter().map(|p| quote(&p.to_string_lossy())));
    if let Some(config) = t.config {
        parts.push("--config".into());
        parts.push(quote(&absolute(config).display().to_string()));
    }
    if let Some(url) = t.url {
        parts.push("--url".into());
        parts.push(quote(url));
    }
    parts.push("supervise".into());
    parts.join(" ")
}

fn stop_timeout(spec: &SupervisorSpec) -> u64 {
    (spec.largest_grace() + STOP_MARGIN).as_secs_f64().ceil() as u64
}

fn systemd(t: &UnitInputs<'_>, user: Option<&str>) -> String {
    let dir = working_dir(t);
    let mut unit = format!(
        "[Unit]
Description=Spool job supervisor
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec}
ExecReload=/bin/kill -HUP $MAINPID
WorkingDirectory={dir}
WatchdogSec={watchdog}
# SIGTERM to the supervisor only: it stops its workers gracefully; anything left after the
# timeout is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={stop}
# Workers and the supervisor exit 0 by design on a restart or terminate: restart always.
Restart=always
RestartSec=1
",
        exec = command_line(t),
        watchdog = WATCHDOG.as_secs(),
        stop = stop_timeout(t.spec),
    );
    if let Some(user) = user {
        unit.push_str(&format!("User={user}\n"));
    }
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

fn supervisor(t: &UnitInputs<'_>, user: Option<&str>) -> String {
    let mut section = format!(
        "[program:spool]
command={exec}
directory={dir}
autostart=true
; Workers and the supervisor exit 0 by design on a restart or terminate: restart always.
autorestart=true
startsecs=1
stopsignal=TERM
stopwaitsecs={stop}
stopasgroup=true
killasgroup=true
redirect_stderr=true
",
        exec = command_line(t),
        dir = working_dir(t),
        stop = stop_timeout(t.spec),
    );
    if let Some(user) = user {
        section.push_str(&format!("user={user}\n"));
    }
    section
}

fn working_dir(t: &UnitInputs<'_>) -> String {
    t.config
        .map(absolute)
        .and_then(|c| c.parent().map(Path::to_path_buf))
        .or_else(|| std::env::current_dir().ok())
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "/".into())
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Double quotes around words systemd and Supervisor would split.
fn quote(word: &str) -> String {
    if word
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word.to_string()
    }
}
