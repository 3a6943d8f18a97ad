//! Printing: JSON documents, plain tables, and logging set-up.

use serde::Serialize;

/// Prints one JSON document on stdout.
pub(crate) fn json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string(value).expect("plain data encodes")
    );
}

/// Prints rows as left-aligned columns.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Prints one row per item, made by `row`, under `header` (see [`table`]).
pub(crate) fn table_of<T>(header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows);
}

/// Prints `label: value` lines, the values aligned one space past the longest label.
pub(crate) fn fields(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    for (label, value) in rows {
        println!("{:<width$} {value}", format!("{label}:"));
    }
}

/// Shortens a message to one line of at most `max` characters.
pub(crate) fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max && !text.contains('\n') {
        return line.to_string();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

/// Logs go to stderr; `SPOOL_LOG` or `RUST_LOG` pick the level (`info` for long-running
/// commands, `warn` otherwise).
pub(crate) fn init_logging(long_running: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let default = if long_running { "info" } else { "warn" };
    let filter = std::env::var("SPOOL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The job's span (queue, job, id, attempt, elapsed) as fields of each line's `span`.
        LogFormat::Json => logs.json().with_ansi(false).try_init(),
    };
}

/// How log lines are written on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, `span`, `spans`).
    Json,
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
