SELECT value FROM {schema}.meta WHERE name = 'restart_epoch'
