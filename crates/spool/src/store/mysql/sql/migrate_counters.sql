INSERT IGNORE INTO spool_meta (name, slot, value) VALUES {rows}
