"""The engine's store: schema, migrations and the transactions that read and write it."""
