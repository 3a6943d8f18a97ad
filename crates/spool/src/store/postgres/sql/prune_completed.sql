-- One slice of a prune of the history: records completed more than $1 ms ago, at most $2.
DELETE FROM {schema}.completed WHERE id IN
    (SELECT id FROM {schema}.completed WHERE completed_at < {schema}.now_ms() - $1
     ORDER BY completed_at LIMIT $2)
