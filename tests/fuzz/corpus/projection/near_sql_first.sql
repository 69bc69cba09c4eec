SELECT 1;
-- @init
CREATE TABLE t(a);
