//! How many worker processes each queue of a pool should have: the pure part of autoscaling,
//! unit-tested without processes or a store (queue-semantics.md S-HZN-2..4).
//!
//! A pool has *slots*: one per queue under `simple` and `auto` balancing (each process serves
//! one queue), one for the whole queue list under `off` (each process serves the list in strict
//! priority order). [`target`] says where each slot should be given the queues' demand;
//! [`step`] moves the current counts toward it by at most `max_shift` per slot and never past
//! `max_processes` in total. The supervisor calls `step` once per cooldown.

use std::time::Duration;

/// How a pool spreads its processes over its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// One slot per queue, sized by each queue's time to clear.
    Auto,
    /// One slot per queue, `max_processes` split evenly, fixed.
    Simple,
    /// One slot for the whole list, sized by the ready jobs.
    Off,
}

/// A pool's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// `auto`: least processes per queue; `off`: least for the pool.
    pub(crate) min: u32,
    /// Most processes in total.
    pub(crate) max: u32,
    /// Jobs at once per process.
    pub(crate) concurrency: u32,
}

/// What one queue asks for right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Demand {
    /// Jobs ready to run now.
    pub(crate) ready: u64,
    /// The measured mean run time of its jobs lately, when there is one.
    pub(crate) mean_run: Option<Duration>,
}

/// Where a pool starts: `simple` at its fixed split, the others at their minimum.
pub(crate) fn initial(shape: Shape, bounds: Bounds, queues: usize) -> Vec<u32> {
    match shape {
        Shape::Simple => even_split(bounds.max, queues),
        Shape::Off => vec![bounds.min.min(bounds.max)],
        Shape::Auto => fill_floors(&vec![bounds.min; queues], bounds.max, |q| -(q as f64)),
    }
}

/// The counts each slot should have for `demand` (one entry per queue, in the pool's order).
pub(crate) fn target(shape: Shape, bounds: Bounds, demand: &[Demand]) -> Vec<u32> {
    match shape {
        Shape::Simple => even_split(bounds.max, demand.len()),
        Shape::Off => vec![off_target(bounds, demand)],
        Shape::Auto => auto_target(bounds, demand),
    }
}

/// One scaling step from `current` toward `target`: each slot moves by at most `max_shift`,
/// scale-downs free room at once, and scale-ups share what room there is under `max`, slots
/// with no process first (a queue with ready jobs is never left without one for long), then
/// the largest gap.
pub(crate) fn step(current: &[u32], target: &[u32], max_shift: u32, max: u32) -> Vec<u32> {
    let shift = max_shift.max(1);
    let mut next: Vec<u32> = current
        .iter()
        .zip(target)
        .map(|(&c, &t)| if t < c { c - (c - t).min(shift) } else { c })
        .collect();
    let mut room = max.saturating_sub(next.iter().sum());
    let mut ups: Vec<usize> = (0..current.len())
        .filter(|&i| target[i] > current[i])
        .collect();
    ups.sort_by_key(|&i| {
        (
            current[i] != 0,
            std::cmp::Reverse(target[i] - current[i]),
            i,
        )
    });
    for i in ups {
        let add = (target[i] - current[i]).min(shift).min(room);
        next[i] += add;
        room -= add;
    }
    next
}

/// `off`: the processes the ready jobs can keep busy, between `min` and `max`, and at least one
/// while anything is ready (S-HZN-4, Spool's version: not `max` whenever anything is ready).
fn off_target(bounds: Bounds, demand: &[Demand]) -> u32 {
    let ready: u64 = demand.iter().map(|d| d.ready).sum();
    let busy = processes_for(ready, bounds.concurrency);
    let floor = if ready > 0 {
        bounds.min.max(1)
    } else {
        bounds.min
    };
    busy.max(floor).min(bounds.max)
}

/// `auto`: every queue gets its floor (`min`, and one while it has ready jobs), then the rest
/// of `max` goes one process at a time to the queue with the most time to clear per process it
/// already has (D'Hondt), never more than its ready jobs can keep busy (S-HZN-3).
fn auto_target(bounds: Bounds, demand: &[Demand]) -> Vec<u32> {
    let weights = time_to_clear(demand);
    let floors: Vec<u32> = demand
        .iter()
        .map(|d| {
            if d.ready > 0 {
                bounds.min.max(1)
            } else {
                bounds.min
            }
        })
        .collect();
    let mut counts = fill_floors(&floors, bounds.max, |i| weights[i]);
    let useful: Vec<u32> = demand
        .iter()
        .zip(&counts)
        .map(|(d, &c)| processes_for(d.ready, bounds.concurrency).max(c))
        .collect();
    let mut room = bounds.max.saturating_sub(counts.iter().sum());
    while room > 0 {
        let next = (0..counts.len())
            .filter(|&i| counts[i] < useful[i] && weights[i] > 0.0)
            .max_by(|&a, &b| {
                let qa = weights[a] / f64::from(counts[a] + 1);
                let qb = weights[b] / f64::from(counts[b] + 1);
                qa.total_cmp(&qb).then(b.cmp(&a))
            });
        let Some(i) = next else { break };
        counts[i] += 1;
        room -= 1;
    }
    counts
}

/// Each queue's time to clear: ready jobs × mean run time (the concurrency divides every queue
/// alike, so it drops out of the shares). A queue with no measurement yet takes the mean of
/// those that have one, or counts its jobs alone when none has.
fn time_to_clear(demand: &[Demand]) -> Vec<f64> {
    let measured: Vec<f64> = demand
        .iter()
        .filter_map(|d| d.mean_run.map(|m| m.as_secs_f64()))
        .collect();
    let fallback = if measured.is_empty() {
        1.0
    } else {
        measured.iter().sum::<f64>() / measured.len() as f64
    };
    demand
        .iter()
        .map(|d| {
            let run = d.mean_run.map_or(fallback, |m| m.as_secs_f64());
            // A job that ran in no measurable time still needs a process.
            d.ready as f64 * run.max(1e-6)
        })
        .collect()
}

/// Gives each slot its floor while `max` allows, the heaviest slots first when it does not.
fn fill_floors(floors: &[u32], max: u32, weight: impl Fn(usize) -> f64) -> Vec<u32> {
    let mut order: Vec<usize> = (0..floors.len()).collect();
    order.sort_by(|&a, &b| weight(b).total_cmp(&weight(a)).then(a.cmp(&b)));
    let mut room = max;
    let mut counts = vec![0; floors.len()];
    for i in order {
        counts[i] = floors[i].min(room);
        room -= counts[i];
    }
    counts
}

/// `max` split evenly over `queues`, the remainder to the first queues (S-HZN-2).
fn even_split(max: u32, queues: usize) -> Vec<u32> {
    let n = u32::try_from(queues.max(1)).unwrap_or(u32::MAX);
    (0..n).map(|i| max / n + u32::from(i < max % n)).collect()
}

/// How many processes of `concurrency` slots `ready` jobs can keep busy.
fn processes_for(ready: u64, concurrency: u32) -> u32 {
    u32::try_from(ready.div_ceil(u64::from(concurrency.max(1)))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(n: u64) -> Demand {
        Demand {
            ready: n,
            mean_run: None,
        }
    }

    fn timed(n: u64, ms: u64) -> Demand {
        Demand {
            ready: n,
            mean_run: Some(Duration::from_millis(ms)),
        }
    }

    const POOL: Bounds = Bounds {
        min: 1,
        max: 10,
        concurrency: 1,
    };

    /// Steps from `from` until the counts stop changing; returns the steps taken and the end.
    fn settle(from: Vec<u32>, target: &[u32], shift: u32, max: u32) -> (u32, Vec<u32>) {
        let mut now = from;
        for n in 0..1000 {
            let next = step(&now, target, shift, max);
            if next == now {
                return (n, now);
            }
            assert!(next.iter().sum::<u32>() <= max, "{next:?} is over {max}");
            now = next;
        }
        panic!("never settled");
    }

    #[test]
    fn simple_splits_max_evenly_and_never_moves() {
        assert_eq!(initial(Shape::Simple, POOL, 2), vec![5, 5]);
        assert_eq!(
            target(Shape::Simple, POOL, &[ready(0), ready(900)]),
            vec![5, 5]
        );
        let bounds = Bounds { max: 7, ..POOL };
        assert_eq!(target(Shape::Simple, bounds, &[ready(1); 3]), vec![3, 2, 2]);
    }

    #[test]
    fn auto_gives_the_busy_queue_all_but_the_minimum_of_the_idle_one() {
        // S-HZN-3's check: 1000 jobs on A, B empty, min 1, max 10 → A = 9, B = 1.
        let goal = target(Shape::Auto, POOL, &[ready(1000), ready(0)]);
        assert_eq!(goal, vec![9, 1]);
        let (steps, end) = settle(initial(Shape::Auto, POOL, 2), &goal, 1, 10);
        assert_eq!(end, goal);
        assert_eq!(steps, 8, "from 1 to 9 one process per cooldown");
    }

    #[test]
    fn auto_splits_by_time_to_clear_not_by_job_count() {
        let bounds = Bounds {
            min: 1,
            max: 12,
            concurrency: 1,
        };
        // Equal counts, but B's jobs take three times as long.
        let goal = target(Shape::Auto, bounds, &[timed(100, 100), timed(100, 300)]);
        assert_eq!(goal, vec![3, 9]);
        // Without measurements the counts decide.
        let goal = target(Shape::Auto, bounds, &[ready(300), ready(100)]);
        assert_eq!(goal, vec![9, 3]);
    }

    #[test]
    fn auto_never_runs_more_processes_than_the_ready_jobs_can_use() {
        let bounds = Bounds {
            min: 1,
            max: 8,
            concurrency: 10,
        };
        // 25 jobs at 10 per process keep 3 processes busy, not 8.
        assert_eq!(
            target(Shape::Auto, bounds, &[ready(25), ready(0)]),
            vec![3, 1]
        );
        assert_eq!(
            target(Shape::Auto, bounds, &[ready(0), ready(0)]),
            vec![1, 1]
        );
    }

    #[test]
    fn a_queue_with_ready_jobs_always_gets_a_process() {
        // min 0 lets idle queues go to zero, but never a queue with work.
        let bounds = Bounds {
            min: 0,
            max: 4,
            concurrency: 1,
        };
        let goal = target(Shape::Auto, bounds, &[ready(10_000), ready(1), ready(0)]);
        assert_eq!(goal, vec![3, 1, 0]);
        // The first step from zero already serves both queues with work.
        let next = step(&[0, 0, 0], &goal, 1, 4);
        assert_eq!(next, vec![1, 1, 0]);
        // At max, the queue with no process is served first.
        let goal = vec![3, 1];
        assert_eq!(step(&[4, 0], &goal, 1, 4), vec![3, 1]);
    }

    #[test]
    fn more_queues_with_work_than_processes_go_to_the_heaviest() {
        let bounds = Bounds {
            min: 1,
            max: 2,
            concurrency: 1,
        };
        let goal = target(Shape::Auto, bounds, &[ready(1), ready(50), ready(9)]);
        assert_eq!(goal, vec![0, 1, 1]);
    }

    #[test]
    fn off_targets_what_the_ready_jobs_need_between_min_and_max() {
        let bounds = Bounds {
            min: 1,
            max: 8,
            concurrency: 5,
        };
        // S-HZN-4: one ready job → one process (Laravel would grow to max).
        assert_eq!(target(Shape::Off, bounds, &[ready(1), ready(0)]), vec![1]);
        assert_eq!(target(Shape::Off, bounds, &[ready(12), ready(9)]), vec![5]);
        assert_eq!(
            target(Shape::Off, bounds, &[ready(1000), ready(0)]),
            vec![8]
        );
        assert_eq!(target(Shape::Off, bounds, &[ready(0), ready(0)]), vec![1]);
        let none = Bounds { min: 0, ..bounds };
        assert_eq!(target(Shape::Off, none, &[ready(0)]), vec![0]);
        assert_eq!(target(Shape::Off, none, &[ready(3)]), vec![1]);
        assert_eq!(initial(Shape::Off, bounds, 2), vec![1]);
    }

    #[test]
    fn steps_reach_any_target_within_the_gap_over_the_shift_plus_one() {
        // Every pair of start and goal for a pool of three queues under max 6.
        let max = 6;
        let counts: Vec<Vec<u32>> = (0..=max)
            .flat_map(|a| {
                (0..=max - a).flat_map(move |b| (0..=max - a - b).map(move |c| vec![a, b, c]))
            })
            .collect();
        for shift in 1..=3 {
            for from in &counts {
                for goal in &counts {
                    let gap = from
                        .iter()
                        .zip(goal)
                        .map(|(f, g)| f.abs_diff(*g))
                        .max()
                        .unwrap();
                    let (steps, end) = settle(from.clone(), goal, shift, max);
                    assert_eq!(&end, goal);
                    assert!(
                        steps <= gap.div_ceil(shift) + 1,
                        "{from:?} → {goal:?} by {shift}: {steps} steps"
                    );
                }
            }
        }
    }

    #[test]
    fn scaling_down_is_bounded_by_the_shift_too() {
        assert_eq!(step(&[9, 1], &[1, 1], 2, 10), vec![7, 1]);
        assert_eq!(step(&[9, 1], &[1, 9], 3, 10), vec![6, 4]);
    }
}
