DROP TABLE IF EXISTS blob_storage_file_log {{cluster}};
