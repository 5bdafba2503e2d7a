"""filters: everything that keeps or drops a record, and says why.

Filters know records, not teachers, the CLI or the dataset layout.
"""
