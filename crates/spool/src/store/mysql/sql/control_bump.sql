INSERT INTO spool_control (kind, name, value) VALUES ('epoch', ?, ?)
ON DUPLICATE KEY UPDATE value = GREATEST(VALUES(value), value + 1)
