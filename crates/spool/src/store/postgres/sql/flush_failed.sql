DELETE FROM {schema}.failed
