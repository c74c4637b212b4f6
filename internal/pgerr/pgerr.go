// Package pgerr tells which PostgreSQL errors are outages (the server restarting, unreachable, out
// of connections) rather than faults of the request or of the code, so that services answer them
// as "unavailable, retry" (REST 503 with Retry-After, GraphQL UNAVAILABLE), not "internal error".
package pgerr

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/internal/rpc"
)

// Unavailable reports whether err says the database could not do the work now: it cannot be
// reached, is starting up or shutting down, has no connection to spare, or the pool waited for one
// until the request's deadline.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) { // whatever the server said when it refused the connection
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "08") || // connection exception
			pg.Code == "57P01" || pg.Code == "57P02" || pg.Code == "57P03" || // admin shutdown, crash shutdown, cannot connect now
			pg.Code == "53300" || pg.Code == "53400" // too many connections, configuration limit exceeded
	}
	var netErr net.Error
	return errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "closed pool")
}

// Busy reports whether the server cancelled a statement that waited too long for a lock
// (lock_timeout) or ran too long (statement_timeout): the data is there but not now.
func Busy(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "55P03" || pg.Code == "57014") // lock_not_available, query_canceled
}

// Classify returns base (nil: every error internal) with outages answered as rpc.CodeUnavailable,
// and text PostgreSQL cannot store (a NUL byte) as rpc.CodeInvalid.
func Classify(base func(error) *rpc.Error) func(error) *rpc.Error {
	return func(err error) *rpc.Error {
		if base != nil {
			if e := base(err); e != nil && e.Code != rpc.CodeInternal {
				return e
			}
		}
		var pg *pgconn.PgError
		if errors.As(err, &pg) && (pg.Code == "22021" || pg.Code == "22P05") { // NUL or a byte sequence the encoding cannot hold
			return &rpc.Error{Code: rpc.CodeInvalid, Message: "text must be valid UTF-8 without NUL bytes"}
		}
		if Busy(err) {
			return &rpc.Error{Code: rpc.CodeUnavailable, Message: "the read model is busy (a lock held, or a statement too long): retry shortly"}
		}
		if Unavailable(err) {
			return &rpc.Error{Code: rpc.CodeUnavailable, Message: "the database is unavailable: retry shortly"}
		}
		return &rpc.Error{Code: rpc.CodeInternal, Message: "internal error"}
	}
}
