package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OrderHistory writes a synthetic order history of about n events straight into the postgres
// event store's table (schema "eventstore", which must exist, migrated), in transactions of 100k
// events, and returns how many it wrote.
//
// Every event carries metadata as the platform writes it (correlation and causation ids, a W3C
// traceparent). The mix: of every 20 orders, 12 are delivered (placed, confirmed, paid, shipped, delivered), 3
// shipped, 2 paid, 3 cancelled after placing; 1 to 4 lines each. An order's events are spread over
// the log as in a live system: each step comes about spread later orders after the previous one,
// so an order's life crosses batch boundaries of a replay.
func OrderHistory(ctx context.Context, pool *pgxpool.Pool, n int, spread int, progress io.Writer) (int, error) {
	const perTx = 100_000
	orders := n * 20 / 84 // 84 events per 20 orders
	total := 0
	for first := 0; first < orders; {
		// Orders [first, last) and their steps, ordered by when each step happens.
		last := min(first+perTx*20/84, orders)
		tag, err := pool.Exec(ctx, `
insert into eventstore.events (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
select 'order-' || o.id, s.k, gen_random_uuid(),
       case s.kind when 0 then 'order.placed.v1' when 1 then 'order.confirmed.v1' when 2 then 'order.paid.v1'
                   when 3 then 'order.shipped.v1' when 4 then 'order.delivered.v1' else 'order.cancelled.v1' end,
       case s.kind when 0 then jsonb_build_object('orderId', o.id, 'customerId', o.customer,
                                 'lines', o.lines, 'totalCents', o.total, 'at', s.at)
                   when 5 then jsonb_build_object('orderId', o.id, 'reason', 'changed my mind', 'at', s.at)
                   else jsonb_build_object('orderId', o.id, 'at', s.at) end,
       jsonb_build_object('correlationId', md5('c' || o.i || s.k)::uuid, 'causationId', md5('k' || o.i || s.k)::uuid,
                          'traceparent', '00-' || md5('t' || o.i) || '-' || left(md5('s' || o.i || s.k), 16) || '-01'),
       s.at::timestamptz
  from (select i, md5('order' || i)::uuid::text as id, md5('customer' || (i % 5000))::uuid::text as customer,
               l.lines, l.total, case when i % 20 < 12 then 5 when i % 20 < 15 then 4 when i % 20 < 17 then 3 else 2 end as steps
          from generate_series($1::int, $2::int - 1) i,
               lateral (select jsonb_agg(jsonb_build_object('productId', md5('product' || ((i * 7 + j) % 1000))::uuid::text,
                                                         'quantity', 1 + (i + j) % 3, 'unitPriceCents', 100 + ((i * 13 + j) % 5000))) as lines,
                               sum((1 + (i + j) % 3) * (100 + ((i * 13 + j) % 5000)))::bigint as total
                          from generate_series(1, 1 + i % 4) j) l) o,
       lateral (select k, case when o.steps = 2 and k = 1 then 5 else k end as kind,
                       to_char(timestamp '2026-01-01' + make_interval(secs => o.i + k * $3::int), 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as at
                  from generate_series(0, o.steps - 1) k) s
 order by o.i + s.k * $3::int, s.k`, first, last, spread)
		if err != nil {
			return total, fmt.Errorf("generate orders %d-%d: %w", first, last, err)
		}
		total += int(tag.RowsAffected())
		first = last
		if progress != nil {
			fmt.Fprintf(progress, "generated %d events\n", total)
		}
	}
	// As autovacuum leaves a live log: hint bits set, visibility map and statistics current (else
	// the first reader of fresh rows pays for setting the hint bits of a million rows).
	_, err := pool.Exec(ctx, `vacuum analyze eventstore.events`)
	return total, err
}

// CopyBaseline measures the raw cost of landing a read model's final rows: it copies the rows of
// tables out of schema from (binary COPY, into memory, not timed), creates the same tables empty
// in a new schema, and times COPY of those rows into them followed by ddl (the secondary
// indexes). It returns that time and the rows copied; the new schema is dropped.
func CopyBaseline(ctx context.Context, pool *pgxpool.Pool, from string, tables []string, ddl string) (time.Duration, int64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	pg := conn.Conn().PgConn()
	const to = "copy_baseline"
	ident := func(parts ...string) string { return pgx.Identifier(parts).Sanitize() }
	if _, err := conn.Exec(ctx, `drop schema if exists `+ident(to)+` cascade; create schema `+ident(to)); err != nil {
		return 0, 0, err
	}
	defer conn.Exec(context.Background(), `drop schema if exists `+ident(to)+` cascade`) //nolint:errcheck
	data := make([]bytes.Buffer, len(tables))
	for i, t := range tables {
		if _, err := pg.CopyTo(ctx, &data[i], `copy `+ident(from, t)+` to stdout (format binary)`); err != nil {
			return 0, 0, fmt.Errorf("copy %s out: %w", t, err)
		}
		// The same columns and primary key, no secondary index, nothing else.
		if _, err := conn.Exec(ctx, `create table `+ident(to, t)+` (like `+ident(from, t)+` including defaults including constraints)`); err != nil {
			return 0, 0, err
		}
	}
	var rows int64
	start := time.Now()
	for i, t := range tables {
		tag, err := pg.CopyFrom(ctx, &data[i], `copy `+ident(to, t)+` from stdin (format binary)`)
		if err != nil {
			return 0, 0, fmt.Errorf("copy %s in: %w", t, err)
		}
		rows += tag.RowsAffected()
	}
	if _, err := conn.Exec(ctx, `set search_path = `+ident(to)+`; `+ddl+`; reset search_path`); err != nil {
		return 0, 0, fmt.Errorf("indexes: %w", err)
	}
	return time.Since(start), rows, nil
}
