-- The view first: dropped after its target, it would fail every insert into events_full.
DROP VIEW IF EXISTS events_core_mv SYNC;
DROP TABLE IF EXISTS events_core SYNC;
DROP TABLE IF EXISTS events_full SYNC;
DROP TABLE IF EXISTS observations_batch_staging SYNC;
