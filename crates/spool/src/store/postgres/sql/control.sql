SELECT kind, name, value FROM {schema}.control
