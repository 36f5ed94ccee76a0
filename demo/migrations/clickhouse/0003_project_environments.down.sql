-- The views first: while one exists, inserts into its source would still write to the table.
DROP TABLE IF EXISTS project_environments_scores_mv {{cluster}};
DROP TABLE IF EXISTS project_environments_observations_mv {{cluster}};
DROP TABLE IF EXISTS project_environments_traces_mv {{cluster}};
DROP TABLE IF EXISTS project_environments {{cluster}};
