"""Importers of existing results: each returns `{table: DataFrame}` for `Pool.write`, or raises PoolError."""
