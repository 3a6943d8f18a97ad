SELECT kind, name, value FROM {schema}.control WHERE kind IN ('paused', 'quiet', 'epoch')
