//! The conformance suite every Spool store passes: the store contract
//! ([`QueueStore`](spool::store::QueueStore), [`AdminStore`](spool::store::AdminStore),
//! [`WorkflowStore`](spool::store::WorkflowStore), [`ControlStore`](spool::store::ControlStore),
//! [`MetricsStore`](spool::store::MetricsStore), [`KeyValueStore`](spool::store::KeyValueStore))
//! written as tests.
//!
//! A store, in this repository or outside it, implements [`Fixture`] (fresh locations, more
//! handles on one, raw writes into its data) and instantiates every check as a test:
//!
//! ```ignore
//! spool_conformance::conformance_tests!(my_store::fixture(), skip {
//!     version_1_schemas_are_upgraded_in_place => "this store never had a version 1",
//! });
//! ```
//!
//! `my_store::fixture()` is a future of `Option<impl Fixture>`, evaluated once per check;
//! `None` skips the check (e.g. a server that can't be reached outside CI). The tests are
//! `#[tokio::test]`s, so the calling crate needs `tokio` (with `macros` and `rt-multi-thread`)
//! among its dev-dependencies. Timing follows D-6: lower bounds are checked exactly, upper
//! bounds with wide slack.

pub mod admin;
pub mod control;
mod fixture;
mod helpers;
pub mod history;
pub mod kv;
pub mod metrics;
pub mod queue;
pub mod workflow;

pub use fixture::{Fixture, Raw, Value};
pub use helpers::{new_job, pending_jobs};

/// Every check under one path, for [`conformance_tests!`].
#[doc(hidden)]
pub mod checks {
    pub use crate::{
        admin::*,
        control::*,
        history::*,
        kv::*,
        metrics::*,
        queue::{migrations::*, settle::*, stored_values::*, unreadable::*, workers::*, *},
        workflow::{batches::*, entry::*, hot_path::*, limits::*, unique::*, *},
    };
}

/// Whether `check` is skipped on this fixture's store; prints `SKIPPED: <check> on
/// <backend>: <reason>` when it is.
#[doc(hidden)]
pub fn skipped(check: &str, skips: &[(&str, &str)], fixture: &dyn Fixture) -> bool {
    match skip_reason(check, skips) {
        Some(reason) => {
            eprintln!("SKIPPED: {check} on {}: {reason}", fixture.backend());
            true
        }
        None => false,
    }
}

/// The reason `check` is skipped, if it is.
fn skip_reason<'a>(check: &str, skips: &[(&str, &'a str)]) -> Option<&'a str> {
    skips
        .iter()
        .find(|(name, _)| *name == check)
        .map(|(_, reason)| *reason)
}

/// Instantiates every conformance check as a `#[tokio::test]` named after it, each on a
/// fixture of its own from `$fixture` (an expression evaluating to a future of
/// `Option<impl Fixture>`). `skip { check => "reason", ... }` names checks that cannot apply
/// to the store, with the reason; a misspelt name does not compile. Use it once per test
/// file.
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:expr $(, skip { $($skip:ident => $reason:expr),* $(,)? })? $(,)?) => {
        const SPOOL_CONFORMANCE_SKIPS: &[(&str, &str)] = &[$($((stringify!($skip), $reason)),*)?];
        $($(const _: () = { let _ = $crate::checks::$skip; };)*)?
        $crate::conformance_tests!(@each $fixture;
            // The queue part.
            push_then_reserve_in_order, duplicate_ids_are_already_queued,
            delayed_jobs_wait_their_turn, reserve_follows_queue_priority,
            settlements_are_fenced, releases_keep_the_counters_right,
            reaper_recovers_jobs_of_dead_workers, poison_pills_fail_after_max_recoveries,
            deregister_hands_jobs_back, stats_tell_when_each_worker_was_last_seen,
            registration_within_a_cap_is_atomic, expired_workers_are_listed_until_reaped,
            pushes_wake_idle_workers,
            retry_deadline_comes_from_the_store_clock, concurrent_reservers_never_share_a_job,
            settle_and_reserve_acks_then_claims, one_settle_batch_mixes_every_kind,
            envelopes_that_are_not_json_are_kept_as_is, huge_delays_are_capped_not_wrapped,
            nul_bytes_are_stripped_from_stored_text,
            envelopes_that_are_not_utf8_fail_alone, times_that_are_not_numbers_fail_alone,
            listings_name_the_job_the_envelope_runs, oversized_envelopes_fail_without_running,
            ready_ids_without_their_job_leave_a_record,
            migrate_is_idempotent, concurrent_first_migrations_are_safe,
            a_fresh_location_is_no_store_until_migrated,
            a_newer_schema_is_refused, version_1_schemas_are_upgraded_in_place,
            // The admin part.
            failed_store_keeps_records, retry_requeues_failed_jobs,
            inspection_and_job_commands, restart_epoch_moves_forward,
            // Tags and the completed history.
            tags_are_kept_and_searchable, completed_jobs_leave_a_history,
            searches_stop_at_their_window, tags_that_break_the_rule_are_refused,
            // The control part.
            pause_quiet_and_terminate_are_recorded, records_are_kept_by_kind_and_name,
            // The metrics part.
            metrics_add_up_per_minute_hour_and_total, pushes_count_enqueued_jobs,
            old_metrics_are_pruned_but_totals_stay, rescued_jobs_are_counted,
            // The key-value part.
            kv_compare_and_set_holds_its_expectation, kv_racing_writers_never_lose_an_update,
            kv_values_expire_and_prefixes_select,
            // The workflow part.
            unique_until_done, unique_until_processing_and_expiry,
            follow_ups_ride_with_settlements, batch_counters_and_callbacks,
            batch_allow_failures_add_cancel_and_prune, chain_links_in_a_batch_count_once,
            batch_failed_ids_stay_bounded,
            poison_pills_count_in_their_batch_and_free_their_locks,
            limiter_is_a_sliding_window, expired_limiter_hits_of_idle_keys_are_pruned,
            slots_limit_concurrency,
            limits_and_slots_hold_under_concurrent_callers, hot_path_applies_side_effects,
            progress_and_results, entry_points_refuse_jobs_that_break_the_rules,
            unique_holder_names_the_job_holding_the_lock,
            callbacks_carry_context_and_an_untouched_payload);
    };
    (@each $fixture:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(fixture) = $fixture.await {
                    let check = stringify!($name);
                    if !$crate::skipped(check, SPOOL_CONFORMANCE_SKIPS, &fixture) {
                        $crate::checks::$name(&fixture).await;
                    }
                    $crate::Fixture::cleanup(&fixture).await;
                }
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_skipped_by_exact_name() {
        let skips = [("a_newer_schema_is_refused", "no schema")];
        assert_eq!(
            skip_reason("a_newer_schema_is_refused", &skips),
            Some("no schema")
        );
        assert_eq!(skip_reason("a_newer_schema", &skips), None);
        assert_eq!(skip_reason("migrate_is_idempotent", &[]), None);
    }

    #[test]
    fn raw_builders_keep_their_arguments() {
        assert_eq!(
            Raw::redis(["HSET", "k", "f", "v"]),
            Raw::Redis(vec!["HSET".into(), "k".into(), "f".into(), "v".into()])
        );
        assert_eq!(
            Raw::sql("DELETE FROM t"),
            Raw::Sql {
                statement: "DELETE FROM t".into(),
                binds: vec![]
            }
        );
        assert_eq!(Value::from(7), Value::Int(7));
    }
}
