"""Worker entry points under the names NoETL's integration guides use (see executor_v2)."""
