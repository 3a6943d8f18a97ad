//! `spool supervise`: pools of worker processes, scaled to demand.

// Wired into the command by the supervisor loop.
#[allow(dead_code)]
pub(crate) mod scale;
