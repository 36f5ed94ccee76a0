DROP TABLE IF EXISTS analytics_scores {{cluster}};
DROP TABLE IF EXISTS analytics_observations {{cluster}};
DROP TABLE IF EXISTS analytics_traces {{cluster}};
