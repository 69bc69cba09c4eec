-- @on A
ATTACH DATABASE 'x.db' AS x;
PRAGMA writable_schema=1;
SELECT :totl, ?;
