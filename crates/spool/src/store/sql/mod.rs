//! Helpers shared by the stores that talk to a database server through sqlx (PostgreSQL,
//! MySQL / MariaDB).

pub(crate) mod job_filter;
pub(crate) mod outcomes;
pub(crate) mod rows;
