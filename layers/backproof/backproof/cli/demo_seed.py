"""A realistic small shop for `backproof demo`: related tables with foreign keys, about 100k
rows, generated inside the server (fast, deterministic, no files)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

SCHEMA = """
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled');

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    full_name   text NOT NULL,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE products (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price       numeric(10, 2) NOT NULL CHECK (price > 0),
    tags        text[] NOT NULL DEFAULT '{}',
    attributes  jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE orders (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    status       order_status NOT NULL,
    created_at   timestamptz NOT NULL,
    note         text
);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_created_idx ON orders (created_at);

CREATE TABLE order_items (
    order_id    bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line        smallint NOT NULL,
    product_id  integer NOT NULL REFERENCES products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, line)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);

CREATE TABLE payments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    bigint NOT NULL UNIQUE REFERENCES orders (id),
    amount      numeric(12, 2) NOT NULL,
    method      text NOT NULL,
    paid_at     timestamptz NOT NULL
);

CREATE VIEW order_totals AS
    SELECT o.id AS order_id, o.customer_id, sum(i.quantity * i.unit_price) AS total
    FROM orders o JOIN order_items i ON i.order_id = o.id GROUP BY o.id;
"""

DATA = """
SELECT setseed(0.42);
INSERT INTO customers (email, full_name, country, created_at)
SELECT 'customer' || i || '@example.com',
       (ARRAY['Ana', 'Björn', 'Chidi', 'Dana', 'Émile', 'Fatima', 'Goro', 'Hana'])[1 + i % 8]
         || ' ' || (ARRAY['Silva', 'Okafor', 'Müller', 'Tanaka', 'Novak', 'García'])[1 + i % 6],
       (ARRAY['PT', 'NG', 'DE', 'JP', 'CZ', 'ES', 'US', 'FR'])[1 + i % 8],
       now() - (i || ' minutes')::interval * 97
FROM generate_series(1, {customers}) AS i;

INSERT INTO products (sku, name, price, tags, attributes)
SELECT 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i, round((2 + random() * 300)::numeric, 2),
       ARRAY[(ARRAY['garden', 'kitchen', 'books', 'toys', 'tools'])[1 + i % 5]],
       jsonb_build_object('weight_g', 50 + i % 900, 'fragile', i % 7 = 0)
FROM generate_series(1, {products}) AS i;

INSERT INTO orders (customer_id, status, created_at, note)
SELECT 1 + (i * 7919) % {customers},
       (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + i % 5]::order_status,
       now() - (i || ' minutes')::interval * 3,
       CASE WHEN i % 11 = 0 THEN 'gift wrap, please' END
FROM generate_series(1, {orders}) AS i;

INSERT INTO order_items (order_id, line, product_id, quantity, unit_price)
SELECT o.id, l, 1 + (o.id * 31 + l * 17) % {products}, 1 + (o.id + l) % 4, p.price
FROM orders o CROSS JOIN generate_series(1, 3) AS l
JOIN products p ON p.id = 1 + (o.id * 31 + l * 17) % {products};

INSERT INTO payments (order_id, amount, method, paid_at)
SELECT o.id, t.total, (ARRAY['card', 'transfer', 'wallet'])[1 + o.id % 3],
       o.created_at + interval '5 minutes'
FROM orders o JOIN order_totals t ON t.order_id = o.id
WHERE o.status <> 'pending' AND o.status <> 'cancelled';
ANALYZE;
"""

SIZES = {"customers": 7_500, "products": 500, "orders": 20_000}


def seed_shop(conn: psycopg.Connection[Any], scale: float = 1.0) -> int:
    """Create and fill the shop; returns the number of rows written (about 100k at scale 1)."""
    sizes = {k: max(10, int(v * scale)) for k, v in SIZES.items()}
    conn.execute(SCHEMA)
    # Sizes are integers computed here; they still go in as literals, never as text.
    conn.execute(sql.SQL(DATA).format(**{k: sql.Literal(v) for k, v in sizes.items()}))
    row = conn.execute(
        "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM products)"
        " + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items)"
        " + (SELECT count(*) FROM payments)"
    ).fetchone()
    return int(row[0]) if row else 0
