"""Storage: one async protocol, several backends (in-memory, SQLite, PostgreSQL)."""
