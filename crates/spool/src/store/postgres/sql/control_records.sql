SELECT name, value, info FROM {schema}.control WHERE kind = $1
