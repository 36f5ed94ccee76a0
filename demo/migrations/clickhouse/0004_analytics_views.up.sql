-- Hourly aggregates for the dashboards; as in 0003, the views name their source's database.
CREATE VIEW IF NOT EXISTS analytics_traces {{cluster}} AS
SELECT project_id, toStartOfHour(timestamp) AS hour, count() AS count_all, uniq(user_id) AS distinct_users
FROM {{database}}.traces GROUP BY project_id, hour;

CREATE VIEW IF NOT EXISTS analytics_observations {{cluster}} AS
SELECT project_id, toStartOfHour(start_time) AS hour, count() AS count_all, sum(total_cost) AS total_cost
FROM {{database}}.observations GROUP BY project_id, hour;

CREATE VIEW IF NOT EXISTS analytics_scores {{cluster}} AS
SELECT project_id, toStartOfHour(timestamp) AS hour, count() AS count_all, avg(value) AS avg_value
FROM {{database}}.scores GROUP BY project_id, hour;
