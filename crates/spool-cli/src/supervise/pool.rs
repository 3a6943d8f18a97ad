//! A pool at run time: its processes per slot, its scaling and its crash restarts.

use std::{
    collections::HashSet,
    process::ExitStatus,
    time::{Duration, Instant},
};

use super::{
    child::{Launcher, Proc},
    scale::{self, Demand},
    spec::PoolSpec,
};

/// A process that exits sooner than this after its start crashed "at once".
const QUICK: Duration = Duration::from_secs(1);
/// Crashes at once in a row that mark the pool failed instead of restarting it again.
const QUICK_CRASHES: u32 = 5;
/// The first restart delay after a crash; it doubles with each crash in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A process that ran this long before crashing starts a new series of back-offs.
const STABLE: Duration = Duration::from_secs(60);

/// `running`, or `failed` with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PoolState {
    Running,
    Failed(String),
}

/// One process of the pool and the slot it serves.
#[derive(Debug)]
struct Member {
    slot: usize,
    proc: Proc,
}

/// A pool's processes, counts and crash history.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) spec: PoolSpec,
    slots: Vec<Vec<String>>,
    /// The processes each slot should have now (moved by [`scale::step`]).
    want: Vec<u32>,
    members: Vec<Member>,
    /// When the last scaling step was taken.
    stepped: Instant,
    crashes: u32,
    quick_crashes: u32,
    restart_at: Option<Instant>,
    pub(crate) state: PoolState,
}

impl Pool {
    pub(crate) fn new(spec: PoolSpec, now: Instant) -> Pool {
        let slots = spec.slot_queues();
        let want = scale::initial(spec.shape, spec.bounds, spec.queues.len());
        Pool {
            spec,
            slots,
            want,
            members: Vec::new(),
            stepped: now,
            crashes: 0,
            quick_crashes: 0,
            restart_at: None,
            state: PoolState::Running,
        }
    }

    /// Live processes (those asked to stop included until they exit).
    pub(crate) fn processes(&self) -> usize {
        self.members.len()
    }

    /// One scaling step toward what `demand` (per queue, in the pool's order) asks for, at most
    /// once per `cooldown`.
    pub(crate) fn scale(
        &mut self,
        demand: &[Demand],
        cooldown: Duration,
        shift: u32,
        now: Instant,
    ) {
        if now.duration_since(self.stepped) < cooldown {
            return;
        }
        self.stepped = now;
        let target = scale::target(self.spec.shape, self.spec.bounds, demand);
        let next = scale::step(&self.want, &target, shift, self.spec.bounds.max);
        if next != self.want {
            tracing::info!(pool = %self.spec.name, from = ?self.want, to = ?next, "scaling");
        }
        self.want = next;
    }

    /// Notes the processes that ended: a clean exit (`--max-jobs`, `--max-time`, a restart)
    /// or `--memory` (12) is replaced at once; anything else is a crash, restarted after a
    /// back-off, and five crashes at once in a row fail the pool.
    pub(crate) fn reap(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.members.len() {
            let Some(status) = self.members[i].proc.exited() else {
                i += 1;
                continue;
            };
            let member = self.members.swap_remove(i);
            if member.proc.terms == 0 {
                self.exited(&member.proc, status, now);
            }
        }
    }

    fn exited(&mut self, proc: &Proc, status: ExitStatus, now: Instant) {
        let ran = now.duration_since(proc.started);
        if status.success() || status.code() == Some(12) {
            tracing::info!(pool = %self.spec.name, pid = proc.pid, code = ?status.code(), "worker stopped; replacing it");
            self.crashes = 0;
            self.quick_crashes = 0;
            return;
        }
        let reason = match proc.last_line() {
            line if line.is_empty() => format!("worker {status}"),
            line => format!("worker {status}: {line}"),
        };
        self.crashed(reason, ran, now);
    }

    /// A process crashed after running for `ran` (or could not start).
    fn crashed(&mut self, reason: String, ran: Duration, now: Instant) {
        if ran >= STABLE {
            self.crashes = 0;
        }
        self.crashes += 1;
        self.quick_crashes = if ran < QUICK {
            self.quick_crashes + 1
        } else {
            0
        };
        if self.quick_crashes >= QUICK_CRASHES {
            tracing::error!(pool = %self.spec.name, %reason, "pool failed: its workers crash at start");
            self.state = PoolState::Failed(reason);
            return;
        }
        let delay = FIRST_BACKOFF
            .saturating_mul(1 << (self.crashes - 1).min(6))
            .min(MAX_BACKOFF);
        tracing::warn!(pool = %self.spec.name, %reason, delay_ms = delay.as_millis() as u64, "worker crashed; restarting it");
        self.restart_at = Some(now + delay);
    }

    /// Starts and stops processes so each slot has what it should: new processes unless the
    /// pool failed or waits out a back-off, graceful stops for the extra ones (newest first).
    pub(crate) fn fill(&mut self, launcher: &Launcher, now: Instant) {
        for slot in 0..self.slots.len() {
            let want = self.want[slot] as usize;
            let mut live: Vec<usize> = (0..self.members.len())
                .filter(|&i| self.members[i].slot == slot && self.members[i].proc.terms == 0)
                .collect();
            while live.len() > want {
                let newest = live
                    .iter()
                    .copied()
                    .max_by_key(|&i| self.members[i].proc.started)
                    .unwrap_or(live[0]);
                self.members[newest].proc.terminate();
                live.retain(|&i| i != newest);
            }
            for _ in live.len()..want {
                if self.state != PoolState::Running || self.restart_at.is_some_and(|at| at > now) {
                    // No start now; the other slots may still have to shrink.
                    break;
                }
                let args = self.spec.work_args(&self.slots[slot]);
                match launcher.spawn(&args) {
                    Ok(proc) => self.members.push(Member { slot, proc }),
                    Err(e) => {
                        let reason = format!("cannot start {}: {e}", launcher.program.display());
                        self.crashed(reason, Duration::ZERO, now);
                    }
                }
            }
        }
    }

    /// Hands every process over to the caller (a new generation takes their place at the next
    /// [`fill`](Pool::fill)), and clears a failure so the new generation gets its chance.
    pub(crate) fn retire_all(&mut self) -> Vec<Proc> {
        self.state = PoolState::Running;
        self.crashes = 0;
        self.quick_crashes = 0;
        self.restart_at = None;
        self.members.drain(..).map(|m| m.proc).collect()
    }

    /// Whether every process not asked to stop has registered with the store.
    pub(crate) fn registered(&self, pids: &HashSet<u32>) -> bool {
        self.members
            .iter()
            .filter(|m| m.proc.terms == 0)
            .all(|m| pids.contains(&m.proc.pid))
    }

    /// Asks every process to stop (a second call hands running jobs back at once).
    pub(crate) fn terminate_all(&mut self) {
        for m in &mut self.members {
            m.proc.terminate();
        }
    }

    /// Forgets the processes that ended, without restarting anything (while stopping).
    pub(crate) fn forget_exited(&mut self) {
        self.members.retain_mut(|m| m.proc.exited().is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::scale::{Bounds, Shape};

    fn pool() -> Pool {
        let bounds = Bounds {
            min: 1,
            max: 2,
            concurrency: 1,
        };
        Pool::new(
            PoolSpec::new("p", &["q"], Shape::Off, bounds),
            Instant::now(),
        )
    }

    #[test]
    fn crashes_back_off_1_2_4_s_and_five_at_start_fail_the_pool() {
        let mut p = pool();
        let now = Instant::now();
        for (n, secs) in [1, 2, 4, 8].into_iter().enumerate() {
            p.crashed(format!("crash {n}"), Duration::ZERO, now);
            assert_eq!(p.restart_at, Some(now + Duration::from_secs(secs)));
            assert_eq!(p.state, PoolState::Running);
        }
        p.crashed("error: bad".into(), Duration::ZERO, now);
        assert_eq!(p.state, PoolState::Failed("error: bad".into()));
        // A new generation gets its chance.
        assert!(p.retire_all().is_empty());
        assert_eq!(p.state, PoolState::Running);
    }

    #[test]
    fn crashes_after_running_a_while_back_off_without_failing_the_pool() {
        let mut p = pool();
        let now = Instant::now();
        for _ in 0..10 {
            p.crashed("crash".into(), Duration::from_secs(5), now);
        }
        assert_eq!(p.state, PoolState::Running);
        assert_eq!(p.restart_at, Some(now + MAX_BACKOFF));
        // A process that ran for a minute starts a new series.
        p.crashed("crash".into(), STABLE, now);
        assert_eq!(p.restart_at, Some(now + FIRST_BACKOFF));
    }
}
