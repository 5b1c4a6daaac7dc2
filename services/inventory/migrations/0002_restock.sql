-- A cancelled order's committed units go back on hand once (cmd.inventory.restock):
-- when, and the answer given, so a repeat under any step key has no second effect.
ALTER TABLE reservations ADD COLUMN restocked_at TEXT;
ALTER TABLE reservations ADD COLUMN restock_reply TEXT;
