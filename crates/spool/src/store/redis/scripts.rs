//! The Lua scripts, compiled into the binary. Each is sent once per server (`SCRIPT LOAD`
//! during [`QueueStore::migrate`](crate::store::QueueStore::migrate), or on first use) and
//! then called by its SHA; after a `SCRIPT FLUSH` or a failover the `NOSCRIPT` reply makes
//! [`redis::Script`] load it again and retry.
//!
//! Files are named after the contract method they serve (`<method>_<step>.lua` for one step
//! of several), or for what they do when several methods share them; `lib.lua`
//! (every script), `queue.lua` and `global.lua` hold the helpers the others start with.

use std::sync::LazyLock;

use redis::Script;

/// A script: the helpers every script shares (`lib.lua`), then those of the keys it works on
/// (if any), then its own body.
macro_rules! script {
    ($file:literal $(, $helpers:literal)?) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/lib.lua"),
                "\n",
                $(include_str!(concat!("scripts/", $helpers)), "\n",)?
                include_str!(concat!("scripts/", $file))
            ))
        })
    };
}

/// A per-queue script: the helpers of `queue.lua` before its own body.
macro_rules! queue_script {
    ($file:literal) => {
        script!($file, "queue.lua")
    };
}

/// A script on the global keys: the helpers of `global.lua` before its own body.
macro_rules! global_script {
    ($file:literal) => {
        script!($file, "global.lua")
    };
}

/// A script on one limiter's or slot's keys (`{<prefix>:limit:<key>}` or
/// `{<prefix>:slot:<key>}`, in KEYS): each such key has a hash tag of its own, so callers of
/// different keys never contend for one Cluster slot. It needs no helpers beyond `lib.lua`.
macro_rules! keyed_script {
    ($file:literal) => {
        script!($file)
    };
}

pub(super) static PUSH: LazyLock<Script> = queue_script!("push.lua");
pub(super) static RESERVE: LazyLock<Script> = queue_script!("reserve.lua");
pub(super) static SETTLE: LazyLock<Script> = queue_script!("settle.lua");
pub(super) static SETTLE_RESERVE: LazyLock<Script> = queue_script!("settle_and_reserve.lua");
pub(super) static REAP: LazyLock<Script> = queue_script!("reap.lua");
pub(super) static DEREGISTER: LazyLock<Script> = queue_script!("deregister_worker_jobs.lua");
pub(super) static NEXT_DUE: LazyLock<Script> = queue_script!("next_available_in.lua");
pub(super) static STATS: LazyLock<Script> = queue_script!("stats_queues.lua");
pub(super) static LIST: LazyLock<Script> = queue_script!("jobs.lua");
pub(super) static METRICS_ADD: LazyLock<Script> = keyed_script!("metrics_add.lua");
pub(super) static KV_PUT: LazyLock<Script> = keyed_script!("kv_put.lua");
pub(super) static KV_LIST: LazyLock<Script> = keyed_script!("kv_list.lua");
pub(super) static KV_DELETE: LazyLock<Script> = keyed_script!("kv_delete.lua");
pub(super) static KV_PRUNE: LazyLock<Script> = keyed_script!("kv_prune.lua");
pub(super) static DELETE: LazyLock<Script> = queue_script!("delete_job.lua");
pub(super) static RUN_NOW: LazyLock<Script> = queue_script!("run_job_now.lua");
pub(super) static CLEAR: LazyLock<Script> = queue_script!("clear.lua");
pub(super) static FAILED_LIST: LazyLock<Script> = queue_script!("failed_jobs.lua");
pub(super) static RETRY: LazyLock<Script> = queue_script!("retry_failed.lua");
pub(super) static FORGET: LazyLock<Script> = queue_script!("forget_failed.lua");
pub(super) static PRUNE_QUEUE: LazyLock<Script> = queue_script!("prune_queue.lua");
pub(super) static RELIST_CHECK: LazyLock<Script> = queue_script!("relist_check.lua");

pub(super) static REGISTER: LazyLock<Script> = global_script!("register_worker.lua");
pub(super) static HEARTBEAT: LazyLock<Script> = global_script!("heartbeat.lua");
pub(super) static REAP_WORKERS: LazyLock<Script> = global_script!("reap_workers.lua");
pub(super) static DEREGISTER_WORKER: LazyLock<Script> = global_script!("deregister_worker.lua");
pub(super) static WORKERS: LazyLock<Script> = global_script!("stats_workers.lua");
pub(super) static MIGRATE: LazyLock<Script> = global_script!("migrate.lua");
pub(super) static RESTART: LazyLock<Script> = global_script!("signal_restart.lua");
pub(super) static UNLIST: LazyLock<Script> = global_script!("unlist_queue.lua");
pub(super) static CONTROL_EPOCH: LazyLock<Script> = global_script!("control_epoch.lua");

pub(super) static BATCH_PUSH: LazyLock<Script> = queue_script!("batch_push.lua");
pub(super) static BATCH_INFO: LazyLock<Script> = queue_script!("batch.lua");
pub(super) static BATCH_CANCEL: LazyLock<Script> = queue_script!("cancel_batch.lua");
pub(super) static BATCH_PRUNE: LazyLock<Script> = queue_script!("prune_batches.lua");
pub(super) static PROGRESS: LazyLock<Script> = queue_script!("set_progress.lua");
pub(super) static SLOT_NOTE: LazyLock<Script> = queue_script!("slot_note.lua");
pub(super) static RESULT_PRUNE: LazyLock<Script> = queue_script!("prune_results.lua");
pub(super) static SEARCH: LazyLock<Script> = queue_script!("search_jobs.lua");
pub(super) static COMPLETED: LazyLock<Script> = queue_script!("completed_jobs.lua");
pub(super) static COMPLETED_PRUNE: LazyLock<Script> = queue_script!("prune_completed.lua");
pub(super) static LIVE_WORKERS: LazyLock<Script> = global_script!("live_workers.lua");
pub(super) static LIMIT: LazyLock<Script> = keyed_script!("limit.lua");
pub(super) static SLOT_ACQUIRE: LazyLock<Script> = keyed_script!("acquire_slot.lua");
pub(super) static SLOT_RELEASE: LazyLock<Script> = keyed_script!("slot_release.lua");

/// Every script, for loading them all up front.
pub(super) fn all() -> [&'static Script; 40] {
    [
        &PUSH,
        &RESERVE,
        &SETTLE,
        &SETTLE_RESERVE,
        &REAP,
        &DEREGISTER,
        &NEXT_DUE,
        &STATS,
        &LIST,
        &DELETE,
        &RUN_NOW,
        &CLEAR,
        &FAILED_LIST,
        &RETRY,
        &FORGET,
        &PRUNE_QUEUE,
        &RELIST_CHECK,
        &UNLIST,
        &CONTROL_EPOCH,
        &REGISTER,
        &HEARTBEAT,
        &REAP_WORKERS,
        &DEREGISTER_WORKER,
        &WORKERS,
        &MIGRATE,
        &RESTART,
        &BATCH_PUSH,
        &BATCH_INFO,
        &BATCH_CANCEL,
        &BATCH_PRUNE,
        &PROGRESS,
        &SLOT_NOTE,
        &RESULT_PRUNE,
        &SEARCH,
        &COMPLETED,
        &COMPLETED_PRUNE,
        &LIVE_WORKERS,
        &LIMIT,
        &SLOT_ACQUIRE,
        &SLOT_RELEASE,
    ]
}
