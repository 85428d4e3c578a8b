-- Document ids order by code point (as in memory and on the other databases), without a
-- collation expression in every query that orders by them.
ALTER TABLE {schema}.documents ALTER COLUMN id TYPE TEXT COLLATE "C";
