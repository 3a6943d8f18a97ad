SELECT 1 FROM {schema}.batches WHERE id = $1 FOR UPDATE
