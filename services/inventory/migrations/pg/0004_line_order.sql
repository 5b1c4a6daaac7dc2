-- PostgreSQL version of ../0004_line_order.sql (a new database: no lines yet).
ALTER TABLE reservation_lines ADD COLUMN line_no BIGINT NOT NULL DEFAULT 0;
