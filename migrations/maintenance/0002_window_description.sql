-- The seeds' maintenance_windows had a description column: a client sending it is answered with it.
ALTER TABLE maintenance_windows ADD COLUMN description TEXT;
