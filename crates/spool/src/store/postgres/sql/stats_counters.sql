SELECT COALESCE((SELECT value FROM {schema}.meta WHERE name = 'processed'), 0),
       (SELECT COUNT(*) FROM {schema}.failed)
