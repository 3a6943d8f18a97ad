-- `IF NOT EXISTS` answers every object already there with a NOTICE; a migration that finds
-- the schema current is the common case and is not news.
SET LOCAL client_min_messages = warning
