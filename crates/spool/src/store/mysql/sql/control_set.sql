INSERT IGNORE INTO spool_control (kind, name, value) VALUES (?, ?, ?)
