//! What the supervisor runs: its pools and their settings, independent of where they were read
//! from (the `[supervisor]` and `[[pool]]` sections of `spool.toml`).

use std::{ffi::OsString, time::Duration};

use super::scale::{Bounds, Shape};

/// The supervisor's settings and its pools.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SupervisorSpec {
    /// Least time between two scaling steps of a pool.
    pub(crate) cooldown: Duration,
    /// Processes added or removed per slot and step.
    pub(crate) max_shift: u32,
    /// The pools, in the file's order.
    pub(crate) pools: Vec<PoolSpec>,
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        SupervisorSpec {
            cooldown: Duration::from_secs(3),
            max_shift: 1,
            pools: Vec::new(),
        }
    }
}

impl SupervisorSpec {
    /// The longest grace of any pool: how long a graceful stop may take.
    pub(crate) fn largest_grace(&self) -> Duration {
        self.pools
            .iter()
            .map(|p| p.grace)
            .max()
            .unwrap_or(DEFAULT_GRACE)
    }
}

/// `work`'s default `--grace`.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// One pool of `work` processes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PoolSpec {
    /// The pool's name, unique in the file.
    pub(crate) name: String,
    /// Queues in strict priority order.
    pub(crate) queues: Vec<String>,
    /// How the processes are spread over the queues.
    pub(crate) shape: Shape,
    /// Least and most processes, and jobs at once per process.
    pub(crate) bounds: Bounds,
    /// How long running jobs may finish after a graceful stop (`work --grace`).
    pub(crate) grace: Duration,
    /// The pool's optional `work` settings, as flags (`--tries 3`, `--allow shell`, ...).
    pub(crate) work_flags: Vec<OsString>,
}

impl PoolSpec {
    /// A pool with `work`'s defaults for every optional setting.
    #[cfg(test)]
    pub(crate) fn new(name: &str, queues: &[&str], shape: Shape, bounds: Bounds) -> PoolSpec {
        PoolSpec {
            name: name.to_string(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            shape,
            bounds,
            grace: DEFAULT_GRACE,
            work_flags: Vec::new(),
        }
    }

    /// The queues each slot's processes serve: one queue per slot, or the whole list under
    /// `off`.
    pub(crate) fn slot_queues(&self) -> Vec<Vec<String>> {
        match self.shape {
            Shape::Off => vec![self.queues.clone()],
            Shape::Auto | Shape::Simple => self.queues.iter().map(|q| vec![q.clone()]).collect(),
        }
    }

    /// The `work` arguments of one process of this pool serving `queues`.
    pub(crate) fn work_args(&self, queues: &[String]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "work".into(),
            "--queue".into(),
            queues.join(",").into(),
            "--concurrency".into(),
            self.bounds.concurrency.to_string().into(),
            "--grace".into(),
            format!("{}ms", self.grace.as_millis()).into(),
        ];
        args.extend(self.work_flags.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_serves_one_queue_unless_balance_is_off() {
        let bounds = Bounds {
            min: 1,
            max: 4,
            concurrency: 5,
        };
        let auto = PoolSpec::new("p", &["high", "low"], Shape::Auto, bounds);
        assert_eq!(auto.slot_queues(), vec![vec!["high"], vec!["low"]]);
        let off = PoolSpec::new("p", &["high", "low"], Shape::Off, bounds);
        assert_eq!(off.slot_queues(), vec![vec!["high", "low"]]);
        let args = off.work_args(&off.slot_queues()[0]);
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "work",
                "--queue",
                "high,low",
                "--concurrency",
                "5",
                "--grace",
                "30000ms"
            ]
        );
    }
}
