-- Readiness writes a row here and deletes it in one transaction, to learn
-- whether a database that failed a write can write again.
CREATE TABLE write_probe (
    payload TEXT NOT NULL
);
