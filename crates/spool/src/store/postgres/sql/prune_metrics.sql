DELETE FROM {schema}.metrics WHERE res = $1 AND at < $2
