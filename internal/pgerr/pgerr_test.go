package pgerr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orderflow/orderflow/internal/pgerr"
	"github.com/orderflow/orderflow/internal/rpc"
)

func TestUnavailable(t *testing.T) {
	t.Parallel()
	// A server that is not there: a real connection error from pgx.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	for _, tt := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("load order-1: %w", refused), true},
		{"shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many clients", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"a bug", errors.New("nil map"), false},
	} {
		if got := pgerr.Unavailable(tt.err); got != tt.want {
			t.Errorf("%s (%v): %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	classify := pgerr.Classify(func(err error) *rpc.Error {
		if errors.Is(err, pgx.ErrNoRows) {
			return &rpc.Error{Code: rpc.CodeNotFound}
		}
		return &rpc.Error{Code: rpc.CodeInternal}
	})
	if e := classify(refused); e.Code != rpc.CodeUnavailable {
		t.Errorf("refused: %+v", e)
	}
	if e := classify(pgx.ErrNoRows); e.Code != rpc.CodeNotFound {
		t.Errorf("the base's answer: %+v", e)
	}
}
