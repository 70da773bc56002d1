"""Use cases: ingest, export and import."""
