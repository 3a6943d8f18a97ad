-- Puts failed jobs back: ?2 picks the selector (0: the ids in the JSON array ?4, 1: all, or
-- those of queue ?3, 2: those of batch ?5); ?1 is now. The retry deadline is recomputed from
-- the envelope's retry window (S-RETRY-4); an envelope that is not JSON has none (`->>` would
-- raise 'malformed JSON' and block the whole retry).
INSERT INTO spool_jobs (id, queue, job, envelope, available_at, retry_until,
                        created_at, batch_id, tags)
SELECT f.id, f.queue, f.job, f.envelope, ?1,
       CASE WHEN json_valid(f.envelope)
            THEN ?1 + (f.envelope ->> '$.options.retry_for_ms') END, ?1, f.batch_id, f.tags
FROM spool_failed f
WHERE (?2 = 1 AND (?3 IS NULL OR f.queue = ?3))
   OR (?2 = 0 AND f.id IN (SELECT value FROM json_each(?4)))
   OR (?2 = 2 AND f.batch_id = ?5)
ON CONFLICT (id) DO NOTHING
RETURNING id, batch_id, tags
