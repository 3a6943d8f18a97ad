DELETE FROM {schema}.control WHERE kind = $1 AND name = $2
