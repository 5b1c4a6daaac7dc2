-- PostgreSQL version of ../0001_init.sql: BIGINT integers, an identity
-- column for seq, and instead of the FTS5 table and its triggers a
-- generated tsvector column (name weight A, sku B, description C, 'simple'
-- configuration: lower-cased words, no stemming, no accent folding) with a
-- GIN index; services/catalog/store.c queries it with to_tsquery prefixes.
CREATE TABLE categories (
    slug        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE products (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,         -- UUIDv7: creation order
    sku          TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    price_amount BIGINT NOT NULL CHECK (price_amount >= 0),
    currency     TEXT NOT NULL CHECK (length(currency) = 3),
    category     TEXT REFERENCES categories(slug) ON DELETE RESTRICT,
    image_url    TEXT,
    active       BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 1,
    doc          TEXT NOT NULL,                -- the product as JSON, as served
    search       tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('simple', name), 'A') ||
                     setweight(to_tsvector('simple', sku), 'B') ||
                     setweight(to_tsvector('simple', description), 'C')) STORED
);
CREATE INDEX products_category ON products(category, id);
CREATE INDEX products_search ON products USING GIN (search);
