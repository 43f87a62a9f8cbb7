"""Test helpers: a throwaway PostgreSQL cluster and a local HTTP server (real services, no mocks)."""
