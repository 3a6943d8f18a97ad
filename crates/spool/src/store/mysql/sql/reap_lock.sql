SELECT seq, worker_id, token FROM spool_jobs WHERE seq IN ({seqs}) ORDER BY seq FOR UPDATE
