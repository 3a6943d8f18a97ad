DELETE FROM {schema}.results WHERE completed_at < {schema}.now_ms() - $1
