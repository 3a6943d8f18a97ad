//! The monitor as plain text: what `--once` prints, and the cells the live view shows, so the
//! two never disagree. No colour is needed to read it.

use super::snapshot::{QueueLine, Snapshot};
use crate::stats::format_ms;

/// The header of the queue table.
pub(crate) const QUEUE_HEADER: [&str; 10] = [
    "QUEUE",
    "PENDING",
    "DELAYED",
    "RUNNING",
    "PAUSED",
    "PER MIN",
    "LAST 30 MIN",
    "WAIT p95",
    "RUN p95",
    "FAILED",
];

/// A queue's cells, in [`QUEUE_HEADER`] order.
pub(crate) fn queue_cells(q: &QueueLine) -> Vec<String> {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), format_ms);
    vec![
        q.name.clone(),
        q.pending.to_string(),
        q.delayed.to_string(),
        q.reserved.to_string(),
        if q.paused { "paused" } else { "" }.to_string(),
        format!("{:.1}", q.throughput_per_min),
        sparkline(&q.per_minute),
        ms(q.wait_p95_ms),
        ms(q.run_p95_ms),
        q.failed.to_string(),
    ]
}

/// Values as block characters, scaled to the largest (a space for zero).
pub(crate) fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if v == 0 || max == 0 {
                ' '
            } else {
                BARS[((v * 7).div_ceil(max)) as usize]
            }
        })
        .collect()
}

/// The workers and supervisors as lines.
pub(crate) fn worker_lines(s: &Snapshot) -> Vec<String> {
    let mut lines: Vec<String> = s
        .workers
        .iter()
        .map(|(id, queues, busy)| format!("worker {id}  [{}]  running {busy}", queues.join(",")))
        .collect();
    for sup in &s.supervisors {
        let pools: Vec<String> = sup
            .pools
            .iter()
            .map(|p| format!("{} {}/{} {}", p.name, p.processes, p.max, p.state))
            .collect();
        lines.push(format!("supervisor {}  {}", sup.id, pools.join(", ")));
    }
    if lines.is_empty() {
        lines.push("no live workers".into());
    }
    lines
}

/// The latest failures as lines.
pub(crate) fn failure_lines(s: &Snapshot) -> Vec<String> {
    let mut lines = vec![format!("{} failed records", s.failed_records)];
    lines.extend(s.recent_failures.iter().map(|f| {
        format!(
            "{}  {}  {}  {}",
            f.failed_at,
            f.queue,
            f.job,
            crate::output::one_line(&f.error, 80)
        )
    }));
    lines
}

/// Prints the whole snapshot once.
pub(crate) fn print(s: &Snapshot) {
    let rows: Vec<Vec<String>> = s.queues.iter().map(queue_cells).collect();
    crate::output::table(&QUEUE_HEADER, &rows);
    println!();
    for line in worker_lines(s) {
        println!("{line}");
    }
    println!();
    for line in failure_lines(s) {
        println!("{}", crate::output::printable(&line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_largest_value() {
        assert_eq!(sparkline(&[0, 1, 2, 4, 8]), " ▂▃▅█");
        assert_eq!(sparkline(&[0, 0]), "  ");
    }
}
