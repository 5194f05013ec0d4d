DROP TABLE service_keys;
DROP TABLE bounce_reports;
