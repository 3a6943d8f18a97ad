UPDATE spool_meta
SET value = value + CASE name WHEN 'processed' THEN ? ELSE ? END
WHERE slot = ? AND name IN (?, ?)
