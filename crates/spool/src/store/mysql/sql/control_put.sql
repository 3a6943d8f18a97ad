INSERT INTO spool_control (kind, name, value, info) VALUES (?, ?, ?, ?)
ON DUPLICATE KEY UPDATE value = VALUES(value), info = VALUES(info)
