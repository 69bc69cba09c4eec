  --   @init
CREATE TABLE t (a);
CREATE TABLE log (a);
CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN
  INSERT INTO log VALUES (new.a); INSERT INTO log VALUES ('x;y');
END;
--@on A,B ,C
INSERT INTO t VALUES (:data);;
