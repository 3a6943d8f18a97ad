REPLACE INTO spool_failed (id, queue, job, envelope, error, causes, attempts, failed_at, batch_id,
                           tags)
SELECT id, queue, job, envelope,
       CONCAT('worker lost ', recoveries + 1, ' times while running this job'),
       JSON_ARRAY(COALESCE(last_error, 'no error recorded before the losses')),
       attempts, {now}, batch_id, tags
FROM spool_jobs WHERE seq IN ({seqs})
