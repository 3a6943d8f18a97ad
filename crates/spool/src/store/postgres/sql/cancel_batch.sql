UPDATE {schema}.batches SET cancelled_at = {schema}.now_ms()
WHERE id = $1 AND cancelled_at IS NULL
