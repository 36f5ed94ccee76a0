DROP TABLE IF EXISTS scores {{cluster}};
DROP TABLE IF EXISTS observations {{cluster}};
DROP TABLE IF EXISTS traces {{cluster}};
