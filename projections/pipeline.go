package projections

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipelineTx is the transaction a Pipelined projection reads in: a connection whose transaction
// the projector began and will end itself, so neither Commit, Rollback nor a nested Begin is the
// projection's to call.
type pipelineTx struct{ conn *pgx.Conn }

var errProjectorsTx = errors.New("projections: the projector ends the batch's transaction")

func (t pipelineTx) Begin(context.Context) (pgx.Tx, error) { return nil, errProjectorsTx }
func (t pipelineTx) Commit(context.Context) error          { return errProjectorsTx }
func (t pipelineTx) Rollback(context.Context) error        { return errProjectorsTx }
func (t pipelineTx) LargeObjects() pgx.LargeObjects        { return pgx.LargeObjects{} }
func (t pipelineTx) Conn() *pgx.Conn                       { return t.conn }

func (t pipelineTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	return t.conn.CopyFrom(ctx, table, columns, rows)
}
func (t pipelineTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, b)
}
func (t pipelineTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}
func (t pipelineTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.conn.Exec(ctx, sql, args...)
}
func (t pipelineTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}
func (t pipelineTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.conn.QueryRow(ctx, sql, args...)
}
