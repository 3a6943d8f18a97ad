DELETE FROM {schema}.control WHERE kind = $1
