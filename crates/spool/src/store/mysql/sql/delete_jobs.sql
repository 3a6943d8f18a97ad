DELETE FROM spool_jobs WHERE seq IN ({seqs})
