-- @on A, *
SELECT 1;
-- @on A,
SELECT 2;
