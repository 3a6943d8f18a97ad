DELETE FROM {schema}.failed WHERE id = $1
