-- hostile (test fixture): the one table the pack owns, with one row its attacks must not lose.
CREATE TABLE probe_t (
    id TEXT PRIMARY KEY,
    note TEXT
);
INSERT INTO probe_t (id, note) VALUES ('p1', 'probe');
