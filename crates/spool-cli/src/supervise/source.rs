//! Reading the supervisor's pools from the configuration file.
//!
//! Only the `[supervisor]` and `[[pool]]` sections are read here; the other sections belong
//! to other commands and are left alone.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
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
    /// How long `spool work` keeps completed jobs' records, when `--history-retention` does
    /// not say.
    #[serde(default, deserialize_with = "optional_duration")]
    pub(crate) history_retention: Option<std::time::Duration>,
    #[serde(default)]
    supervisor: Option<SupervisorSection>,
    #[serde(default)]
    pool: Vec<PoolSection>,
    #[serde(default)]
    schedule: Vec<ScheduleSection>,
    /// `[dashboard]`: what `spool dashboard` uses when its flags don't say.
    #[serde(default)]
    pub(crate) dashboard: Option<DashboardSection>,
    #[serde(default)]
    alert: Vec<crate::alerts::AlertSection>,
    /// `[llm]`: the language-model providers (`[[llm.provider]]`).
    #[cfg(feature = "llm")]
    #[serde(default)]
    pub(crate) llm: Option<LlmSection>,
}

/// The `[llm]` section.
#[cfg(feature = "llm")]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LlmSection {
    /// `[[llm.provider]]` entries.
    #[serde(default)]
    pub(crate) provider: Vec<spool::llm::ProviderConfig>,
}

/// A duration written as on the command line (`90s`, `1h`), refused with the parser's reason
/// (the TOML error then names the line).
fn optional_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let text = String::deserialize(d)?;
    spool::parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// The `[dashboard]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DashboardSection {
    /// The address to listen on (`127.0.0.1:7070` by default).
    pub(crate) bind: Option<String>,
    /// A file holding the token every request must carry.
    pub(crate) token_file: Option<PathBuf>,
    /// Hide and refuse actions.
    pub(crate) read_only: Option<bool>,
}

impl DashboardSection {
    /// The bind address, checked.
    pub(crate) fn bind(&self) -> Result<Option<std::net::SocketAddr>, String> {
        self.bind
            .as_deref()
            .map(|b| {
                b.parse().map_err(|_| {
                    format!("bind: `{b}` is not an address and port such as 127.0.0.1:7070")
                })
            })
            .transpose()
    }
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
        self.checked_schedules().map_err(|(_, _, why)| why)
    }

    /// The file's language-model client: its `[[llm.provider]]` entries, checked (none: the
    /// provider `OPENAI_BASE_URL` and `OPENAI_API_KEY` describe).
    #[cfg(feature = "llm")]
    pub(crate) fn llm(&self) -> Result<spool::llm::Llm, String> {
        let providers = self.llm.clone().unwrap_or_default().provider;
        spool::llm::Llm::new(providers).map_err(|e| e.to_string())
    }

    /// The file's alerts, checked.
    pub(crate) fn alerts(&self) -> Result<Vec<crate::alerts::Alert>, String> {
        self.checked_alerts().map_err(|(_, _, why)| why)
    }

    /// [`File::alerts`], an error also naming the entry's index and key.
    fn checked_alerts(&self) -> Result<Vec<crate::alerts::Alert>, (usize, &'static str, String)> {
        crate::alerts::check(&self.alert)
    }

    /// [`File::schedules`], an error also naming the entry's index and key.
    fn checked_schedules(&self) -> Result<Vec<ScheduleEntry>, (usize, &'static str, String)> {
        let mut out: Vec<ScheduleEntry> = Vec::new();
        for (i, s) in self.schedule.iter().enumerate() {
            let fail =
                |key: &'static str, why: String| (i, key, format!("schedule `{}`: {why}", s.name));
            if s.name.trim().is_empty() {
                return Err(fail("name", "the name is empty".into()));
            }
            if out.iter().any(|(o, _)| o.name == s.name) {
                return Err(fail("name", "the name is used twice".into()));
            }
            spool::limits::check_queue(&s.queue)
                .map_err(|e| fail("queue", format!("queue: {e}")))?;
            let payload = match &s.payload {
                Some(p) => serde_json::to_value(p).map_err(|e| fail("payload", e.to_string()))?,
                // As `spool dispatch` without `--payload`.
                None => serde_json::json!({}),
            };
            // Periodic's errors already name the schedule.
            let mut periodic =
                spool::Periodic::from_job_name(&s.name, &s.cron, &s.job, &s.queue, payload)
                    .map_err(|e| (i, "cron", e.to_string()))?;
            if let Some(zone) = &s.timezone {
                periodic = periodic
                    .in_zone(zone)
                    .map_err(|e| (i, "timezone", e.to_string()))?;
            }
            out.push((s.clone(), periodic));
        }
        Ok(out)
    }
}

/// A file being checked: its path and text, to name the line of a key in an error.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// `FILE: line N: ` for `key` of the `index`-th `[[section]]` entry (or `[section]` when
    /// `index` is `None`); the entry's header line when the key is not written (a default).
    fn at(&self, section: &str, index: Option<usize>, key: &str) -> String {
        match line_of(self.text, section, index, key) {
            Some(line) => format!("{}: line {line}: ", self.path.display()),
            None => format!("{}: ", self.path.display()),
        }
    }
}

/// The line (1-based) where `key` of the `index`-th `[[section]]` (or of `[section]`) is
/// written, else that entry's header line. The parser already accepted the text, so a plain
/// reading of headers and `key =` lines is enough.
fn line_of(text: &str, section: &str, index: Option<usize>, key: &str) -> Option<usize> {
    let (array, table) = (format!("[[{section}]]"), format!("[{section}]"));
    let mut seen = 0;
    let mut header = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            if header.is_some() {
                break;
            }
            let opens = match index {
                Some(i) if trimmed.starts_with(&array) => {
                    seen += 1;
                    seen == i + 1
                }
                None => trimmed.starts_with(&table) && !trimmed.starts_with("[["),
                _ => false,
            };
            if opens {
                header = Some(n + 1);
            }
            continue;
        }
        if header.is_some()
            && let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return Some(n + 1);
        }
    }
    header
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
    let (text, file) = parse(path)?;
    let source = Source { path, text: &text };
    spec(&source, &file)?;
    file.checked_schedules()
        .map_err(|(i, key, why)| format!("{}{why}", source.at("schedule", Some(i), key)))?;
    file.checked_alerts()
        .map_err(|(i, key, why)| format!("{}{why}", source.at("alert", Some(i), key)))?;
    if let Some(dashboard) = &file.dashboard {
        dashboard
            .bind()
            .map_err(|why| format!("{}[dashboard] {why}", source.at("dashboard", None, "bind")))?;
    }
    #[cfg(feature = "llm")]
    if let Some(llm) = &file.llm {
        for (i, provider) in llm.provider.iter().enumerate() {
            provider.check().map_err(|why| {
                format!(
                    "{}[[llm.provider]] {why}",
                    source.at("llm.provider", Some(i), "name")
                )
            })?;
        }
        spool::llm::check_providers(&llm.provider).map_err(|why| {
            format!(
                "{}[[llm.provider]] {why}",
                source.at("llm.provider", None, "")
            )
        })?;
    }
    Ok(file)
}

/// Reads the `[supervisor]` and `[[pool]]` sections of `path`.
pub(crate) fn load(path: &Path) -> Result<SupervisorSpec, String> {
    let (text, file) = parse(path)?;
    spec(&Source { path, text: &text }, &file)
}

fn parse(path: &Path) -> Result<(String, File), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((text, file))
}

/// The supervisor's settings and pools from a file already read.
fn spec(source: &Source<'_>, file: &File) -> Result<SupervisorSpec, String> {
    let mut spec = SupervisorSpec::default();
    if let Some(s) = &file.supervisor {
        let at = |key: &str| format!("{}supervisor.{key}", source.at("supervisor", None, key));
        if let Some(c) = &s.cooldown {
            spec.cooldown =
                spool::parse_duration(c).map_err(|e| format!("{}: {e}", at("cooldown")))?;
        }
        if let Some(m) = s.max_shift {
            if m == 0 {
                return Err(format!("{} must be at least 1", at("max_shift")));
            }
            spec.max_shift = m;
        }
    }
    for (i, p) in file.pool.iter().enumerate() {
        if let Some(first) = file.pool[..i].iter().position(|o| o.name == p.name) {
            return Err(format!(
                "{}pool `{}`: name is used twice (also by pool {} of the file)",
                source.at("pool", Some(i), "name"),
                p.name,
                first + 1
            ));
        }
        spec.pools.push(pool(source, i, p.clone())?);
    }
    Ok(spec)
}

fn pool(source: &Source<'_>, index: usize, p: PoolSection) -> Result<PoolSpec, String> {
    let at = |key: &str| {
        format!(
            "{}pool `{}`: {key}",
            source.at("pool", Some(index), key),
            p.name
        )
    };
    if p.name.trim().is_empty() {
        return Err(format!("{} is empty: name the pool", at("name")));
    }
    if p.queues.is_empty() {
        return Err(format!(
            "{} is empty: list the queues the pool serves",
            at("queues")
        ));
    }
    for (i, queue) in p.queues.iter().enumerate() {
        spool::limits::check_queue(queue).map_err(|e| format!("{}: {e}", at("queues")))?;
        if p.queues[..i].contains(queue) {
            return Err(format!("{}: `{queue}` is listed twice", at("queues")));
        }
    }
    for (key, value) in [
        ("concurrency", p.concurrency),
        ("max_processes", p.max_processes),
    ] {
        if value == 0 {
            return Err(format!("{} must be at least 1", at(key)));
        }
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
    if shape == Shape::Simple && (p.max_processes as usize) < p.queues.len() {
        return Err(format!(
            "{} ({}) is below the number of queues ({}): `simple` gives each queue a process of its own",
            at("max_processes"),
            p.max_processes,
            p.queues.len()
        ));
    }
    for (key, value) in [
        ("tries", p.tries.map(u64::from)),
        ("memory", p.memory),
        ("max_jobs", p.max_jobs),
    ] {
        if value == Some(0) {
            return Err(format!("{} must be at least 1", at(key)));
        }
    }
    for (key, value) in [("timeout", &p.timeout), ("max_time", &p.max_time)] {
        if let Some(text) = value {
            spool::parse_duration(text).map_err(|e| format!("{}: {e}", at(key)))?;
        }
    }
    if let Some(list) = &p.backoff {
        spool::parse_duration_list(&list.join(","))
            .map_err(|e| format!("{}: {e}", at("backoff")))?;
    }
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
        Some(g) => spool::parse_duration(g).map_err(|e| format!("{}: {e}", at("grace")))?,
        None => DEFAULT_GRACE,
    };
    Ok(PoolSpec {
        name: p.name,
        queues: p.queues,
        shape,
        bounds: Bounds {
            min: p.min_processes,
            max: p.max_processes,
            concurrency: p.concurrency,
        },
        grace,
        work_flags: flags,
    })
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
        let err = load_text(&format!("dashbord = true\n{pool}")).unwrap_err();
        assert!(err.contains("line 1") && err.contains("dashbord"), "{err}");
        let err = load_text(&format!("{pool}colour = \"red\"\n")).unwrap_err();
        assert!(err.contains("line 4") && err.contains("colour"), "{err}");
    }

    /// Each value the parser accepts but the supervisor cannot use is refused with the line
    /// of its key (or of its pool's header when the key takes its default).
    #[test]
    fn bad_values_are_refused_with_their_line_and_key() {
        let ok = "[[pool]]\nname = \"a\"\nqueues = [\"q\"]\n";
        let cases = [
            (format!("{ok}[[pool]]\nname = \"a\"\nqueues = [\"r\"]\n"), "line 5", "name is used twice"),
            ("[[pool]]\nname = \"\"\nqueues = [\"q\"]\n".into(), "line 2", "name"),
            ("[[pool]]\nname = \"a\"\nqueues = []\n".into(), "line 3", "queues"),
            ("[[pool]]\nname = \"a\"\nqueues = [\"a,b\"]\n".into(), "line 3", "queues"),
            ("[[pool]]\nname = \"a\"\nqueues = [\"q\", \"q\"]\n".into(), "line 3", "listed twice"),
            (format!("{ok}concurrency = 0\n"), "line 4", "concurrency"),
            (format!("{ok}max_processes = 0\nmin_processes = 0\n"), "line 4", "max_processes"),
            (format!("{ok}min_processes = 3\nmax_processes = 2\n"), "line 4", "min_processes"),
            (format!("{ok}balance = \"fair\"\n"), "line 4", "balance"),
            ("[[pool]]\nname = \"a\"\nqueues = [\"q\", \"r\"]\nbalance = \"simple\"\nmax_processes = 1\n".into(), "line 5", "max_processes"),
            (format!("{ok}timeout = \"soon\"\n"), "line 4", "timeout"),
            (format!("{ok}max_time = \"1x\"\n"), "line 4", "max_time"),
            (format!("{ok}backoff = [\"1s\", \"later\"]\n"), "line 4", "backoff"),
            (format!("{ok}grace = \"-1\"\n"), "line 4", "grace"),
            (format!("{ok}tries = 0\n"), "line 4", "tries"),
            (format!("[supervisor]\nmax_shift = 0\n{ok}"), "line 2", "max_shift"),
            (format!("[supervisor]\ncooldown = \"a while\"\n{ok}"), "line 2", "cooldown"),
        ];
        for (text, line, key) in cases {
            let err = load_text(&text).unwrap_err();
            assert!(err.contains(line) && err.contains(key), "{text}\n=> {err}");
        }
        // Defaults need no line: the pool's header is named.
        let err = load_text(
            "[[pool]]\nname = \"a\"\nqueues = [\"q\", \"r\", \"s\"]\nbalance = \"simple\"\n",
        )
        .unwrap_err();
        assert!(err.contains("line 4") || err.contains("line 1"), "{err}");
    }

    #[test]
    fn keys_are_found_in_the_right_entry() {
        let text = "url = \"x\"\n[[pool]]\nname = \"a\"\n[[pool]]\nname = \"b\"\nmax = 1\n[supervisor]\nmax_shift = 0\n";
        assert_eq!(line_of(text, "pool", Some(0), "name"), Some(3));
        assert_eq!(line_of(text, "pool", Some(1), "name"), Some(5));
        assert_eq!(
            line_of(text, "pool", Some(1), "queues"),
            Some(4),
            "the header"
        );
        assert_eq!(line_of(text, "pool", Some(2), "name"), None);
        assert_eq!(line_of(text, "supervisor", None, "max_shift"), Some(8));
        assert_eq!(line_of(text, "pool", Some(1), "max"), Some(6));
    }
}
