-- Which environments each project has used, kept up to date by one materialized view per
-- source table. The views name their tables with {{database}}: on 18.16, ON CLUSTER qualifies
-- only the created object, so on the other replicas an unqualified FROM or TO would resolve in
-- the server's default database.
CREATE TABLE IF NOT EXISTS project_environments {{cluster}} (
    project_id String,
    environments AggregateFunction(groupUniqArray, String)
) ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{{database}}/project_environments', '{replica}')
ORDER BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS project_environments_traces_mv {{cluster}}
TO {{database}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{database}}.traces GROUP BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS project_environments_observations_mv {{cluster}}
TO {{database}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{database}}.observations GROUP BY project_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS project_environments_scores_mv {{cluster}}
TO {{database}}.project_environments AS
SELECT project_id, groupUniqArrayState(environment) AS environments FROM {{database}}.scores GROUP BY project_id;
