//! The live view: the queue table (the selected row reversed, so it reads without colour), the
//! workers and supervisors, the latest failures, and a line of keys and messages.

use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Paragraph, Row, Table, TableState},
};

use super::{
    snapshot::Snapshot,
    text::{QUEUE_HEADER, failure_lines, queue_cells, worker_lines},
};

/// Draws `snapshot` with row `selected` highlighted and `message` at the bottom.
pub(crate) fn draw(frame: &mut Frame<'_>, snapshot: &Snapshot, selected: usize, message: &str) {
    let workers = worker_lines(snapshot);
    let failures = failure_lines(snapshot);
    let [queues_area, workers_area, failures_area, keys_area] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(workers.len().min(8) as u16 + 2),
        Constraint::Length(failures.len().min(7) as u16 + 2),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let rows = snapshot.queues.iter().map(|q| Row::new(queue_cells(q)));
    let widths = [
        Constraint::Min(12),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(31),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    let table = Table::new(rows, widths)
        .header(Row::new(QUEUE_HEADER).style(Style::new().add_modifier(Modifier::BOLD)))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(" Spool — queues (last 30 min) "));
    let last = snapshot.queues.len().checked_sub(1);
    let mut state = TableState::default().with_selected(last.map(|last| selected.min(last)));
    frame.render_stateful_widget(table, queues_area, &mut state);

    let lines = |items: Vec<String>| items.into_iter().map(Line::from).collect::<Vec<_>>();
    frame.render_widget(
        Paragraph::new(lines(workers)).block(Block::bordered().title(" Workers ")),
        workers_area,
    );
    frame.render_widget(
        Paragraph::new(lines(failures)).block(Block::bordered().title(" Recent failures ")),
        failures_area,
    );
    let keys = format!("↑/↓ select  p pause/continue  r retry failed  q quit   {message}");
    frame.render_widget(Paragraph::new(keys), keys_area);
}
