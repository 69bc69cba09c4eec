-- @init
/* unterminated
-- @on A
*/ SELECT 1;
