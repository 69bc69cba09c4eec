-- @on X
SELECT 1