//! Printing: JSON documents, plain tables, and logging set-up.

use serde::Serialize;

use crate::telemetry::Telemetry;

/// Prints one JSON document on stdout.
pub(crate) fn json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("plain data encodes")
    );
}

/// The most characters a table cell shows; longer values (a queue name or an error written
/// by another program) are cut with `…`. `--json` has them whole.
const MAX_CELL: usize = 200;

/// Prints rows as left-aligned columns. Cells are made printable (see [`printable`]) and
/// cut to [`MAX_CELL`] characters.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| cut(&printable(c), MAX_CELL)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Padded by hand rather than with `{:<w$}`: std's formatter cannot pad past 65,535.
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 2));
        }
        println!("{}", out.trim_end());
    };
    line(&header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for row in &rows {
        line(row);
    }
}

/// `text` safe to print on a terminal: control characters (escape sequences, newlines, NUL)
/// are shown escaped (`\u{1b}`, `\n`), never sent raw.
pub(crate) fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// At most `max` characters of `text`, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Prints one row per item, made by `row`, under `header` (see [`table`]).
pub(crate) fn table_of<T>(header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows);
}

/// Prints `label: value` lines, the values aligned one space past the longest label, made
/// printable (see [`printable`]).
pub(crate) fn fields(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    for (label, value) in rows {
        let label = format!("{label}:");
        let pad = " ".repeat(width - label.len() + 1);
        println!("{label}{pad}{}", printable(value));
    }
}

/// Shortens a message to one line of at most `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max && !text.contains('\n') {
        return line.to_string();
    }
    let shown: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{shown}…")
}

/// Logs go to stderr; `SPOOL_LOG` or `RUST_LOG` pick the level (`info` for long-running
/// commands, `warn` otherwise). Exported spans have their own filter (`telemetry`): quieter
/// logs keep the traces.
pub(crate) fn init_logging(long_running: bool, format: LogFormat, telemetry: &Telemetry) {
    use tracing_subscriber::{
        EnvFilter, Layer, layer::SubscriberExt, registry::Registry, util::SubscriberInitExt,
    };
    // Third-party crates speak only when something is wrong: sqlx's slow-statement and
    // slow-acquire lines are noise from a busy worker whose statements are known.
    let default = if long_running {
        "info,sqlx=warn,hyper=warn,reqwest=warn"
    } else {
        "warn"
    };
    let filter = std::env::var("SPOOL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // A write that fails (the reader of stderr went away) is dropped: the default reports
        // it with `eprint!`, which panics on a closed stderr, inside whatever task logged —
        // a worker's job stayed reserved under its lease for good.
        .log_internal_errors(false)
        .with_target(false);
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        // The job's span (queue, job, id, attempt, elapsed, trace_id, parent_span_id) as
        // fields of each line's `span`.
        LogFormat::Json => logs.json().with_ansi(false).with_filter(filter).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(telemetry.layer())
        .try_init();
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `span`, `spans`).
    Json,
}

impl LogFormat {
    /// The flag value that selects this format.
    pub(crate) fn as_arg(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// The payload of a stored envelope for display: its JSON, or `{"encrypted": true}` for an
/// encrypted job (the sealed text is of no use to a reader, and the plaintext is never shown).
pub(crate) fn payload_of(envelope: &str) -> Option<serde_json::Value> {
    let envelope = serde_json::from_str::<serde_json::Value>(envelope).ok()?;
    if envelope.get("payload_enc").is_some() {
        return Some(serde_json::json!({ "encrypted": true }));
    }
    envelope.get("payload").cloned()
}
