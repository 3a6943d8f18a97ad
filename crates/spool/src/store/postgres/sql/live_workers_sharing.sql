SELECT count(*) FROM {schema}.workers WHERE expires_at > {schema}.now_ms() AND queues && $1
