-- Reservation lines keep the order they were given in an explicit column
-- (the rowid order of before is SQLite's own); existing lines keep theirs.
ALTER TABLE reservation_lines ADD COLUMN line_no INTEGER NOT NULL DEFAULT 0;
UPDATE reservation_lines SET line_no = rowid;
