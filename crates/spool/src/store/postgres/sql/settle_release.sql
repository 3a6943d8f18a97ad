WITH clock AS MATERIALIZED (SELECT {schema}.now_ms() AS ms),
released AS (
    UPDATE {schema}.jobs j
    SET worker_id = NULL, reserved_at = NULL,
        available_at = (SELECT ms FROM clock) + LEAST(d.delay_ms, $3),
        attempts = j.attempts - d.refund,
        deferrals = j.deferrals + d.deferral,
        exceptions = j.exceptions + d.exception,
        last_error = COALESCE(d.error, j.last_error)
    FROM json_to_recordset($1::json) AS d (
        id text, token bigint, delay_ms bigint, refund bigint, deferral bigint,
        exception bigint, error text)
    WHERE j.id = d.id AND j.worker_id = $2 AND j.token = d.token
    RETURNING j.id, j.token),
freed AS (DELETE FROM {schema}.slots s USING released x WHERE s.holder = x.id)
SELECT id, token FROM released
