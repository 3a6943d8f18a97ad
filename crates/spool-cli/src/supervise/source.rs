//! Reading the supervisor's pools from the configuration file.
//!
//! Only the `[supervisor]` and `[[pool]]` sections are read here; the other sections belong
//! to other commands and are left alone.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use super::{
    scale::{Bounds, Shape},
    spec::{DEFAULT_GRACE, PoolSpec, SupervisorSpec},
};

/// The configuration file: the one named, else `spool.toml` in the working directory.
pub(crate) fn config_path(named: Option<&Path>) -> PathBuf {
    named.map_or_else(|| PathBuf::from(DEFAULT_FILE), Path::to_path_buf)
}

/// The file every command reads when `--config` names none.
pub(crate) const DEFAULT_FILE: &str = "spool.toml";

/// The file a command reads: the one `--config` names (which must exist), else `spool.toml`
/// in the working directory if there is one, else none.
pub(crate) fn read_config(named: Option<&Path>) -> Result<Option<File>, String> {
    match named {
        Some(path) => read(path).map(Some),
        None if Path::new(DEFAULT_FILE).exists() => read(Path::new(DEFAULT_FILE)).map(Some),
        None => Ok(None),
    }
}

// Refuses every other key: a `url` or `[[schedule]]` that is silently not read would look
// like a supervisor running on the wrong store or without its schedules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// The store URL, used when neither `--url` nor `SPOOL_URL` is given.
    pub(crate) url: Option<String>,
    /// The log format, used when neither `--log-format` nor `SPOOL_LOG_FORMAT` is given.
    pub(crate) log_format: Option<crate::output::LogFormat>,
    #[serde(default)]
    supervisor: Option<SupervisorSection>,
    #[serde(default)]
    pool: Vec<PoolSection>,
    #[serde(default)]
    schedule: Vec<ScheduleSection>,
}

/// A `[[schedule]]` entry: a job pushed on a cron schedule by every worker reading the file
/// (each tick once across all of them).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleSection {
    pub(crate) name: String,
    pub(crate) cron: String,
    pub(crate) timezone: Option<String>,
    pub(crate) job: String,
    #[serde(default)]
    pub(crate) payload: Option<toml::Value>,
    #[serde(default = "default_queue")]
    pub(crate) queue: String,
}

fn default_queue() -> String {
    spool::DEFAULT_QUEUE.to_string()
}

/// A `[[schedule]]` entry as written, and the periodic job it makes.
pub(crate) type ScheduleEntry = (ScheduleSection, spool::Periodic);

impl File {
    /// The file's schedules, checked (cron, time zone, queue name, unique names).
    pub(crate) fn schedules(&self) -> Result<Vec<ScheduleEntry>, String> {
        let mut out: Vec<ScheduleEntry> = Vec::new();
        for s in &self.schedule {
            if out.iter().any(|(o, _)| o.name == s.name) {
                return Err(format!("schedule `{}`: the name is used twice", s.name));
            }
            spool::limits::check_queue(&s.queue)
                .map_err(|e| format!("schedule `{}`: queue: {e}", s.name))?;
            let payload = match &s.payload {
                Some(p) => serde_json::to_value(p).map_err(|e| e.to_string())?,
                None => serde_json::Value::Null,
            };
            let mut periodic =
                spool::Periodic::from_job_name(&s.name, &s.cron, &s.job, &s.queue, payload)
                    .map_err(|e| e.to_string())?;
            if let Some(zone) = &s.timezone {
                periodic = periodic.in_zone(zone).map_err(|e| e.to_string())?;
            }
            out.push((s.clone(), periodic));
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SupervisorSection {
    cooldown: Option<String>,
    max_shift: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolSection {
    name: String,
    queues: Vec<String>,
    #[serde(default = "one")]
    concurrency: u32,
    #[serde(default = "one")]
    min_processes: u32,
    #[serde(default = "one")]
    max_processes: u32,
    #[serde(default = "auto")]
    balance: String,
    tries: Option<u32>,
    timeout: Option<String>,
    backoff: Option<Vec<String>>,
    memory: Option<u64>,
    max_jobs: Option<u64>,
    max_time: Option<String>,
    grace: Option<String>,
    allow: Option<Vec<String>>,
}

fn one() -> u32 {
    1
}

fn auto() -> String {
    "auto".into()
}

/// Reads and checks the whole file at `path` (every command does, at start).
pub(crate) fn read(path: &Path) -> Result<File, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    spec(path, &file)?;
    file.schedules()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(file)
}

/// Reads the `[supervisor]` and `[[pool]]` sections of `path`.
pub(crate) fn load(path: &Path) -> Result<SupervisorSpec, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    spec(path, &file)
}

/// The supervisor's settings and pools from a file already read.
fn spec(path: &Path, file: &File) -> Result<SupervisorSpec, String> {
    let mut spec = SupervisorSpec::default();
    if let Some(s) = &file.supervisor {
        if let Some(c) = &s.cooldown {
            spec.cooldown = duration(path, "supervisor.cooldown", c)?;
        }
        if let Some(m) = s.max_shift {
            spec.max_shift = m.max(1);
        }
    }
    for p in &file.pool {
        spec.pools.push(pool(path, p.clone())?);
    }
    Ok(spec)
}

fn pool(path: &Path, p: PoolSection) -> Result<PoolSpec, String> {
    let at = |key: &str| format!("{}: pool `{}`: {key}", path.display(), p.name);
    if p.queues.is_empty() {
        return Err(format!("{} has no queues", at("queues")));
    }
    if p.min_processes > p.max_processes {
        return Err(format!(
            "{} ({}) is above max_processes ({})",
            at("min_processes"),
            p.min_processes,
            p.max_processes
        ));
    }
    let shape = match p.balance.as_str() {
        "auto" => Shape::Auto,
        "simple" => Shape::Simple,
        "off" => Shape::Off,
        other => {
            return Err(format!(
                "{} is `{other}`: use auto, simple or off",
                at("balance")
            ));
        }
    };
    let mut flags: Vec<OsString> = Vec::new();
    let mut flag = |name: &str, value: String| {
        flags.push(format!("--{name}").into());
        flags.push(value.into());
    };
    if let Some(t) = p.tries {
        flag("tries", t.to_string());
    }
    if let Some(t) = p.timeout {
        flag("timeout", t);
    }
    if let Some(b) = p.backoff {
        flag("backoff", b.join(","));
    }
    if let Some(m) = p.memory {
        flag("memory", m.to_string());
    }
    if let Some(m) = p.max_jobs {
        flag("max-jobs", m.to_string());
    }
    if let Some(m) = p.max_time {
        flag("max-time", m);
    }
    if let Some(a) = p.allow {
        flag("allow", a.join(","));
    }
    let grace = match &p.grace {
        Some(g) => duration(path, &format!("pool `{}`: grace", p.name), g)?,
        None => DEFAULT_GRACE,
    };
    Ok(PoolSpec {
        name: p.name,
        queues: p.queues,
        shape,
        bounds: Bounds {
            min: p.min_processes,
            max: p.max_processes,
            concurrency: p.concurrency.max(1),
        },
        grace,
        work_flags: flags,
    })
}

fn duration(path: &Path, key: &str, text: &str) -> Result<Duration, String> {
    spool::parse_duration(text).map_err(|e| format!("{}: {key}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<SupervisorSpec, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.toml");
        std::fs::write(&path, text).unwrap();
        load(&path)
    }

    #[test]
    fn keys_it_does_not_read_are_refused_with_their_line() {
        let pool = "[[pool]]\nname = \"a\"\nqueues = [\"default\"]\n";
        assert!(load_text(pool).is_ok());
        assert!(load_text(&format!("url = \"sqlite://x.db\"\n{pool}")).is_ok());
        let err = load_text(&format!("dashboard = true\n{pool}")).unwrap_err();
        assert!(err.contains("line 1") && err.contains("dashboard"), "{err}");
        let err = load_text(&format!("{pool}colour = \"red\"\n")).unwrap_err();
        assert!(err.contains("line 4") && err.contains("colour"), "{err}");
    }
}
