-- Whether queue ?1 has a job a claim at ?2 (now) would take: the same two index ranges as
-- `reserve.sql`, read without the write lock.
SELECT EXISTS (SELECT 1 FROM spool_jobs
               WHERE queue = ?1 AND worker_id IS NULL AND available_at >= '')
    OR EXISTS (SELECT 1 FROM spool_jobs
               WHERE queue = ?1 AND worker_id IS NULL AND available_at <= ?2)
