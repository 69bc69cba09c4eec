-- @init
CREATE TABLE t(a);
-- @init
CREATE TABLE u(a);
