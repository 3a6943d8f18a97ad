-- Queued jobs a search found, as `jobs.sql` lists them plus `seq`: the source placeholder is
-- replaced by the candidates (`seq`, `available_at`, `pos`: at most the search window of
-- them, from an index), and the filters, the order and the limit are appended in Rust.
WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms)
SELECT j.id, j.queue, j.job, j.worker_id, j.available_at, j.attempts, j.recoveries, j.deferrals,
       j.last_error, j.envelope, j.progress, j.progress_message, clock.ms, j.reserved_at, j.tags,
       j.seq
FROM ({source}) AS w JOIN {schema}.jobs j ON j.seq = w.seq, clock
WHERE true
