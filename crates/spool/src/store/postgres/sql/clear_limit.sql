DELETE FROM {schema}.limits WHERE key = $1
