-- @init
CREATE TABLE t(a);
-- @onn X
SELECT 1;
