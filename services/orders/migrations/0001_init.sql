-- Orders schema: categories, products with their rendered JSON document
-- (the read representation, rewritten on every change), and an FTS5 index
-- over name, description and sku kept in step by triggers.
CREATE TABLE categories (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE products (
    seq          INTEGER PRIMARY KEY,          -- stable rowid for the FTS index
    id           TEXT NOT NULL UNIQUE,         -- UUIDv7: creation order
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_amount INTEGER NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    category     TEXT REFERENCES categories(slug) ON DELETE RESTRICT,
    image_url    TEXT,
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1,
    doc          TEXT NOT NULL                 -- the product as JSON, as served
);
CREATE INDEX products_category ON products(category, id);

CREATE VIRTUAL TABLE products_fts USING fts5(
    name, description, sku,
    content = 'products', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts(rowid, name, description, sku)
    VALUES (new.seq, new.name, new.description, new.sku);
END;

CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, name, description, sku)
    VALUES ('delete', old.seq, old.name, old.description, old.sku);
END;

CREATE TRIGGER products_fts_update AFTER UPDATE OF name, description, sku ON products BEGIN
    INSERT INTO products_fts(products_fts, rowid, name, description, sku)
    VALUES ('delete', old.seq, old.name, old.description, old.sku);
    INSERT INTO products_fts(rowid, name, description, sku)
    VALUES (new.seq, new.name, new.description, new.sku);
END;
