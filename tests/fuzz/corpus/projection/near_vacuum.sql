-- @init x
-- @on *
vacuum;
