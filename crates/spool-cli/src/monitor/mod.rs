//! `spool monitor`: a live terminal view of the queues (ratatui), refreshed every second,
//! with keys to pause or continue the selected queue and retry its failed jobs; `--once`
//! prints the same figures as plain text for scripts.

mod snapshot;
mod text;
mod view;

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Args;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use spool::{Store, store::RetrySelector};
use tokio::sync::mpsc;

use crate::CliError;
use snapshot::Snapshot;

/// `spool monitor`.
#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// Only these queues (repeat or separate with commas); all by default.
    #[arg(long, value_delimiter = ',')]
    queue: Vec<String>,
    /// How often to read the store again.
    #[arg(long, default_value = "1s", value_parser = spool::parse_duration)]
    refresh: Duration,
    /// Print the figures once as plain text and exit.
    #[arg(long)]
    once: bool,
}

pub(crate) async fn run(store: Arc<dyn Store>, a: MonitorArgs) -> Result<ExitCode, CliError> {
    if a.once {
        text::print(&Snapshot::read(&*store, &a.queue).await?);
        return Ok(ExitCode::SUCCESS);
    }
    let refresh = a.refresh.max(Duration::from_millis(100));
    let keys = read_keys();
    let mut terminal = ratatui::init();
    let result = live(&mut terminal, &*store, &a.queue, refresh, keys).await;
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

/// Key presses, read on a thread of their own (crossterm's reads block).
fn read_keys() -> mpsc::UnboundedReceiver<KeyCode> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        loop {
            match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    if tx.send(key.code).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

async fn live(
    terminal: &mut ratatui::DefaultTerminal,
    store: &dyn Store,
    only: &[String],
    refresh: Duration,
    mut keys: mpsc::UnboundedReceiver<KeyCode>,
) -> Result<(), CliError> {
    let mut selected = 0usize;
    let mut message = String::new();
    let mut snapshot = Snapshot::default();
    let mut tick = tokio::time::interval(refresh);
    loop {
        terminal.draw(|frame| view::draw(frame, &snapshot, selected, &message))?;
        tokio::select! {
            _ = tick.tick() => {
                match Snapshot::read(store, only).await {
                    Ok(read) => snapshot = read,
                    // Keep the last figures on screen and say why they are old.
                    Err(e) => message = format!("store unreachable: {e}"),
                }
            }
            key = keys.recv() => {
                let Some(key) = key else { return Ok(()) };
                let queue = snapshot.queues.get(selected).map(|q| (q.name.clone(), q.paused));
                match key {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Up | KeyCode::Char('k') => selected = selected.saturating_sub(1),
                    KeyCode::Down | KeyCode::Char('j') => {
                        selected = (selected + 1).min(snapshot.queues.len().saturating_sub(1));
                    }
                    KeyCode::Char('p') => {
                        if let Some((name, paused)) = queue {
                            message = pause_or_continue(store, &name, paused).await;
                            tick.reset_immediately();
                        }
                    }
                    KeyCode::Char('r') => {
                        if let Some((name, _)) = queue {
                            message = retry_failed(store, &name).await;
                            tick.reset_immediately();
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

async fn pause_or_continue(store: &dyn Store, queue: &str, paused: bool) -> String {
    let queues = [queue.to_string()];
    let done = if paused {
        store.resume(&queues).await.map(|_| "continued")
    } else {
        store.pause(&queues).await.map(|_| "paused")
    };
    match done {
        Ok(what) => format!("{queue}: {what}"),
        Err(e) => format!("{queue}: {e}"),
    }
}

async fn retry_failed(store: &dyn Store, queue: &str) -> String {
    let selector = RetrySelector::All {
        queue: Some(queue.to_string()),
    };
    match store.retry_failed(&selector).await {
        Ok(ids) => format!("{queue}: {} failed jobs queued again", ids.len()),
        Err(e) => format!("{queue}: {e}"),
    }
}
