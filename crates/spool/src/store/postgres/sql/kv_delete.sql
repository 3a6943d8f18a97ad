DELETE FROM {schema}.kv WHERE name >= $1 AND ($2::text IS NULL OR name < $2)
