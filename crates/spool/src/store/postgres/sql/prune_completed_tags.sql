-- One slice of a prune of the history's tag index: rows completed more than $1 ms ago, at
-- most $2.
DELETE FROM {schema}.completed_tags WHERE (tag, completed_at, id) IN
    (SELECT tag, completed_at, id FROM {schema}.completed_tags
     WHERE completed_at < {schema}.now_ms() - $1 ORDER BY completed_at LIMIT $2)
