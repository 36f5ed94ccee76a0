DROP TABLE IF EXISTS event_log {{cluster}};
