-- Orders read model
/* block
   comment */
-- @init
CREATE TABLE orders (id TEXT PRIMARY KEY, total REAL, status TEXT);
CREATE INDEX orders_status ON orders(status);

-- @on OrderPlaced
INSERT INTO orders (id, total, status)
VALUES (:stream, json_extract(:data, '$.total'), 'placed');

-- @on OrderShipped, OrderDelivered
UPDATE orders SET status = 'shipped; really' WHERE id = :stream; -- trailing comment
-- @on *
SELECT :position, :version, :id, :type, :meta, :recorded_at
