package orders

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/orderflow/orderflow/internal/auth"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/wire"
)

// Page sizes of List.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// List returns orders newest first, optionally of one customer and one status. After is the
// EndCursor of the previous page: pages never repeat or skip an order, even while orders are added.
func (s Service) List(ctx context.Context, req wire.ListOrders) (wire.OrderPage, error) {
	first := req.First
	switch {
	case first == 0:
		first = DefaultPageSize
	case first < 0 || first > MaxPageSize:
		return wire.OrderPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "first", Message: fmt.Sprintf("must be between 1 and %d", MaxPageSize)}
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if scope := auth.CustomerScope(ctx); scope != "" { // a customer lists its own orders only
		if req.CustomerID != "" && req.CustomerID != scope {
			return wire.OrderPage{}, fmt.Errorf("%w: a customer lists its own orders only", auth.ErrForbidden)
		}
		req.CustomerID = scope
	}
	if req.CustomerID != "" {
		where = append(where, "customer_id = "+arg(req.CustomerID))
	}
	if req.Status != "" {
		where = append(where, "status = "+arg(req.Status))
	}
	if req.After != "" {
		at, id, err := decodeCursor(req.After)
		if err != nil {
			return wire.OrderPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "after", Message: "not a cursor from this API"}
		}
		where = append(where, "(placed_at, order_id) < ("+arg(at)+", "+arg(id)+")")
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.OrderPage{}, err
	}
	q := `select ` + orderColumns + ` from orders`
	if len(where) > 0 {
		q += " where " + strings.Join(where, " and ")
	}
	q += " order by placed_at desc, order_id desc limit " + arg(first+1)
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return wire.OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	page := wire.OrderPage{Orders: []wire.Order{}}
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			return wire.OrderPage{}, fmt.Errorf("list orders: %w", err)
		}
		page.Orders = append(page.Orders, o)
	}
	if err := rows.Err(); err != nil {
		return wire.OrderPage{}, fmt.Errorf("list orders: %w", err)
	}
	if len(page.Orders) > first {
		page.Orders, page.HasNextPage = page.Orders[:first], true
	}
	if err := s.withHistory(ctx, page.Orders); err != nil {
		return wire.OrderPage{}, err
	}
	page.Cursors = make([]string, len(page.Orders))
	for i, o := range page.Orders {
		page.Cursors[i] = encodeCursor(o.PlacedAt, o.ID)
	}
	if n := len(page.Cursors); n > 0 {
		page.EndCursor = page.Cursors[n-1]
	}
	return page, nil
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", err
	}
	ts, id, ok := strings.Cut(string(b), "|")
	if !ok {
		return time.Time{}, "", fmt.Errorf("cursor has no id")
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return time.Time{}, "", err
	}
	return time.UnixMicro(us).UTC(), id, nil
}
