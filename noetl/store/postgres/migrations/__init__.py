# Migrations NNNN_name.sql, applied in version order and recorded in noetl.schema_migrations.
# Version 13 was shipped on main for a short time and then withdrawn: databases created then record
# it as applied, so the next migration is numbered 0014 (a new 0013 would be skipped on them).
