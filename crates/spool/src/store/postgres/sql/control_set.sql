INSERT INTO {schema}.control (kind, name, value) VALUES ($1, $2, $3) ON CONFLICT (kind, name) DO NOTHING
