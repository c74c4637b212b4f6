package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Generic plans. A prepared statement is planned again at each execution for as long as
// PostgreSQL's plan cache (plan_cache_mode auto) finds its generic plan costlier than the custom
// plans it made for its first executions. For the two statements the store runs most, the read of
// $all (once per append, for the subscriptions' shared tail) and the group append, it does once
// the log has grown: a generic plan must assume a position anywhere in the log (a third of its
// rows, a LIMIT of a tenth of them) and arrays of any length, where the custom plans saw the end of
// a young log and a group's few streams; a connection then plans every execution for as long as
// it lives. Yet both plans are the same index scans, and planning them costs about as much as
// running them again (BenchmarkTailRead runs the read both ways). So these
// statements run after genericSQL, in the same pipeline: one implicit transaction, in which the
// setting holds for the statement and ends with it.
//
// A generic plan is made on the table as it is then, and kept until autovacuum next analyzes it.
// On a young log (and up to tens of thousands of rows) the cheapest-looking plan for the read
// fetches every row past the position and sorts them: a catch-up read of the grown log would
// then cost the whole rest of the log per page. The read is planned with sorts disabled
// (genericReadSQL): its order comes from the index, at any size.
const (
	genericSQL     = `select set_config('plan_cache_mode', 'force_generic_plan', true)`
	genericReadSQL = genericSQL + `, set_config('enable_sort', 'off', true)`
)

// queryGeneric is pool.Query with query's generic plan, made and run with settings (genericSQL or
// genericReadSQL; none: pool.Query, as the plan cache decides). Closing the rows releases the
// connection.
func queryGeneric(ctx context.Context, pool *pgxpool.Pool, settings, query string, args ...any) (pgx.Rows, error) {
	if settings == "" {
		return pool.Query(ctx, query, args...)
	}
	b := &pgx.Batch{}
	b.Queue(settings)
	b.Queue(query, args...)
	br := pool.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return batchRows{rows, br}, nil
}

// batchRows are the rows of a batch's last statement: closing them closes the batch.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}
