-- Data that trips naive dump and compare code. Every statement must run on PostgreSQL 13+.
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;

CREATE SCHEMA "Sales";
CREATE SCHEMA "données";
CREATE SCHEMA archive;

-- Mixed-case and unicode identifiers, quotes and spaces in names.
CREATE TABLE "Sales"."Order Items" (
    "ID" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Qty" integer NOT NULL CHECK ("Qty" > 0),
    "unit price" numeric(30, 12) NOT NULL,
    total numeric GENERATED ALWAYS AS ("Qty" * "unit price") STORED,
    "note ""quoted""" text
);
INSERT INTO "Sales"."Order Items" ("Qty", "unit price", "note ""quoted""")
SELECT i, (i * 1.123456789012)::numeric(30, 12), CASE WHEN i % 3 = 0 THEN NULL ELSE 'n' || i END
FROM generate_series(1, 500) AS i;

CREATE TABLE "données"."clé_ünïcode" (
    "идентификатор" serial PRIMARY KEY,
    "名前" text,
    emoji text
);
INSERT INTO "données"."clé_ünïcode" ("名前", emoji)
VALUES ('東京', '🐘'), ('Zürich', '✓'), (NULL, ''), ('tab	and
newline', E'back\\slash');

-- No primary key, duplicate rows, NULLs.
CREATE TABLE public.no_pk (a integer, b text);
INSERT INTO public.no_pk VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, NULL), (NULL, 'y');

-- An empty table.
CREATE TABLE public.empty_table (id integer PRIMARY KEY, payload jsonb);

-- Floats at their edges, huge-scale numeric, times across zones, intervals, bytea, arrays, jsonb.
CREATE TABLE public.values_zoo (
    id serial PRIMARY KEY,
    f8 double precision,
    f4 real,
    big numeric,
    ts timestamptz,
    t timestamp,
    d date,
    iv interval,
    raw bytea,
    tags text[],
    grid integer[][],
    doc jsonb,
    kv hstore,
    email citext,
    m money,
    u uuid,
    r int4range
);
INSERT INTO public.values_zoo (f8, f4, big, ts, t, d, iv, raw, tags, grid, doc, kv, email, m, u, r) VALUES
 ('NaN', 'NaN', 0.000000000000000000000000000000000000001, '2024-03-31 01:30:00+01', '2024-03-31 01:30:00', '2024-02-29', '1 year 2 mons 3 days 04:05:06.789', '\x00ff10', ARRAY['a', NULL, 'c'], '{{1,2},{3,4}}', '{"a": [1, 2, {"b": null}], "z": "ü"}', 'a=>1, b=>NULL', 'MiXeD@Example.com', 12.34, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '[1,10)'),
 ('Infinity', '-Infinity', 123456789012345678901234567890.123456789012345678901234567890, '1999-12-31 23:59:59.999999-08', 'infinity', '0001-01-01 BC', '-2 days +03:00', '', '{}', NULL, '[]', '', NULL, -0.01, NULL, 'empty'),
 ('-Infinity', 'Infinity', -1e-30, '2038-01-19 03:14:08+00', '-infinity', 'infinity', '0', NULL, ARRAY['comma,inside', 'quote"inside'], '{{5}}', 'null', NULL, 'x@y', NULL, NULL, '(,)'),
 (0.1 + 0.2, 3.4028235e38, 'NaN', '2000-01-01 00:00:00+14', '2000-01-01', '2000-01-01', '1 microsecond', '\xdeadbeef', NULL, NULL, '{"n": 1.0000000000000000001}', NULL, NULL, NULL, NULL, NULL),
 (-0.0, 1.17549435e-38, 1e100, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Declarative partitioning with a default partition.
CREATE TABLE public.events (
    id bigint NOT NULL,
    happened_at timestamptz NOT NULL,
    kind text NOT NULL,
    PRIMARY KEY (id, happened_at)
) PARTITION BY RANGE (happened_at);
CREATE TABLE public.events_2024 PARTITION OF public.events
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_other PARTITION OF public.events DEFAULT;
INSERT INTO public.events
SELECT i, timestamptz '2024-06-01' + (i || ' days')::interval, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END
FROM generate_series(1, 800) AS i;
CREATE INDEX events_kind_idx ON public.events (kind);

-- Foreign keys across schemas, a trigger, a function, a view, a materialized view.
CREATE TABLE archive.customers (id integer PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE archive.invoices (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES archive.customers (id),
    amount numeric(12, 2) NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO archive.customers SELECT i, 'customer ' || i FROM generate_series(1, 50) AS i;
INSERT INTO archive.invoices (id, customer_id, amount, updated_at)
SELECT i, 1 + i % 50, (i * 7.31)::numeric(12, 2), timestamptz '2025-01-01' + (i || ' hours')::interval
FROM generate_series(1, 2000) AS i;

CREATE FUNCTION archive.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
CREATE TRIGGER invoices_touch BEFORE UPDATE ON archive.invoices
    FOR EACH ROW EXECUTE FUNCTION archive.touch();

CREATE VIEW archive.customer_totals AS
    SELECT c.name, sum(i.amount) AS total FROM archive.customers c JOIN archive.invoices i ON i.customer_id = c.id GROUP BY c.name;
CREATE MATERIALIZED VIEW archive.big_customers AS
    SELECT customer_id, count(*) AS n FROM archive.invoices GROUP BY customer_id HAVING count(*) > 10;

-- Sequences: one standalone advanced past its start, one never called.
CREATE SEQUENCE public.ticket_seq START 1000;
SELECT nextval('public.ticket_seq') FROM generate_series(1, 42);
CREATE SEQUENCE public.unused_seq;

-- Large objects.
SELECT lo_from_bytea(0, convert_to(repeat('large object payload ', 1000), 'UTF8'));
SELECT lo_from_bytea(0, '\x000102030405');

-- A domain and an enum.
CREATE DOMAIN public.positive_int AS integer CHECK (VALUE > 0);
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.feelings (id public.positive_int PRIMARY KEY, mood public.mood);
INSERT INTO public.feelings VALUES (1, 'happy'), (2, 'sad'), (3, NULL);
