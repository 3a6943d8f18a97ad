SELECT COUNT(*) FROM {schema}.failed WHERE ($1::text IS NULL OR queue = $1)
