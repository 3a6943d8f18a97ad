WITH beat AS (
    UPDATE {schema}.workers SET expires_at = {schema}.now_ms() + $2
    WHERE id = $1 RETURNING 1)
SELECT EXISTS (SELECT 1 FROM beat),
       COALESCE((SELECT value FROM {schema}.meta WHERE name = 'restart_epoch'), 0)
