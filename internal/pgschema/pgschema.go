// Package pgschema opens connection pools confined to one schema: each read model lives in its
// own schema (of its own database in production, of one shared database in dev), and its SQL
// names tables without qualification.
package pgschema

import (
	"context"
	"fmt"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrationLock is the transaction-scoped advisory lock every orderflow migration of a database
// takes first: DDL such as CREATE SCHEMA IF NOT EXISTS is not safe against itself (two targets
// starting at once on a fresh database: "duplicate key value violates unique constraint
// pg_namespace_nspname_index"), so migrations of one database run one at a time.
const MigrationLock = `select pg_advisory_xact_lock(7306394211836745729)`

// Lock takes MigrationLock in tx; it is released when tx ends.
func Lock(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, MigrationLock); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	return nil
}

// Limits of a pool for reads (OpenReads): a read that waits for a lock longer than ReadLockWait, or
// runs longer than ReadStatementTimeout, is cancelled by the server. A query service answers it
// unavailable (pgerr): a read model whose table someone locked answers at once instead of piling
// up reads until the service has no room left for any.
const (
	ReadLockWait         = 500 * time.Millisecond
	ReadStatementTimeout = 5 * time.Second
)

// OpenReads is Open for a query service's reads: its connections wait at most ReadLockWait for a
// lock and ReadStatementTimeout for a statement.
func OpenReads(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, schema, maxConns, map[string]string{
		"lock_timeout":      fmt.Sprint(ReadLockWait.Milliseconds()),
		"statement_timeout": fmt.Sprint(ReadStatementTimeout.Milliseconds()),
	})
}

// Open creates schema if it does not exist (under MigrationLock) and returns a pool whose
// connections use it as their search_path. maxConns 0 keeps pgx's default.
func Open(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	return open(ctx, url, schema, maxConns, nil)
}

func open(ctx context.Context, url, schema string, maxConns int32, params map[string]string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if schema != "" {
		conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := Lock(ctx, tx); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "create schema if not exists "+pgx.Identifier{schema}.Sanitize())
			return err
		})
		conn.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("create schema %s: %w", schema, err)
		}
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	}
	for k, v := range params { // not on the connection above: it may wait for other migrations
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	cfg.AfterConnect = FastJSON
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// FastJSON makes conn read and write json and jsonb columns with goccy/go-json (encoding/json's
// semantics at a fraction of its cost) rather than encoding/json: the saga's states, the orders'
// lines and every other JSON value a query scans into a Go value or takes from one.
func FastJSON(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	m.RegisterType(&pgtype.Type{Name: "json", OID: pgtype.JSONOID, Codec: &pgtype.JSONCodec{Marshal: gojson.Marshal, Unmarshal: gojson.Unmarshal}})
	m.RegisterType(&pgtype.Type{Name: "jsonb", OID: pgtype.JSONBOID, Codec: &pgtype.JSONBCodec{Marshal: gojson.Marshal, Unmarshal: gojson.Unmarshal}})
	for _, t := range []struct {
		name     string
		oid, elt uint32
	}{{"_json", pgtype.JSONArrayOID, pgtype.JSONOID}, {"_jsonb", pgtype.JSONBArrayOID, pgtype.JSONBOID}} {
		elt, _ := m.TypeForOID(t.elt)
		m.RegisterType(&pgtype.Type{Name: t.name, OID: t.oid, Codec: &pgtype.ArrayCodec{ElementType: elt}})
	}
	return nil
}
