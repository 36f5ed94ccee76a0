-- The sequence is owned by audit_logs.id and goes with the table.
DROP TABLE IF EXISTS audit_logs;
