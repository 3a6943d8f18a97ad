SELECT owner FROM {schema}.locks WHERE key = $1
