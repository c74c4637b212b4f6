// Package catalog is the catalog query service: products by id (one or many), search by name or
// sku prefix with cursor pagination, and the low-stock listing, over the catalog read model.
package catalog

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/orderflow/orderflow/eventstore"
	"github.com/orderflow/orderflow/internal/progress"
	"github.com/orderflow/orderflow/internal/rpc"
	"github.com/orderflow/orderflow/projections"
	"github.com/orderflow/orderflow/wire"
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	MaxIDs          = 500
)

// Service answers catalog queries.
type Service struct {
	Pool *pgxpool.Pool
	progress.ReadModel
	// Cache, if set, keeps products between get_many calls (see progress.Cache).
	Cache *progress.Cache[string, wire.Product]
}

const columns = `product_id, sku, name, price_cents, on_hand, reserved, on_hand - reserved, discontinued, updated_at`

// scan reads a product's columns, then into extra the row's further columns, if any.
func scan(row pgx.Row, extra ...any) (wire.Product, error) {
	var p wire.Product
	err := row.Scan(append([]any{&p.ID, &p.SKU, &p.Name, &p.PriceCents, &p.OnHand, &p.Reserved, &p.Available, &p.Discontinued, &p.UpdatedAt}, extra...)...)
	return p, err
}

// ProductByID returns one product; not_found if there is none.
func (s Service) ProductByID(ctx context.Context, req wire.ProductByID) (wire.Product, error) {
	if req.ID == "" {
		return wire.Product{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "id", Message: "is required"}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.Product{}, err
	}
	p, err := scan(s.Pool.QueryRow(ctx, `select `+columns+` from products where product_id = $1`, req.ID))
	if errors.Is(err, pgx.ErrNoRows) {
		return wire.Product{}, rpc.Errorf(rpc.CodeNotFound, "product %s not found", req.ID)
	}
	if err != nil {
		return wire.Product{}, fmt.Errorf("product %s: %w", req.ID, err)
	}
	return p, nil
}

// ProductsByIDs returns the products of ids that exist, in one query: for batched readers.
func (s Service) ProductsByIDs(ctx context.Context, req wire.ProductsByIDs) ([]wire.Product, error) {
	if len(req.IDs) > MaxIDs {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: "ids", Message: fmt.Sprintf("at most %d ids", MaxIDs)}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return nil, err
	}
	out, missing := s.Cache.Get(req.IDs)
	if len(missing) == 0 {
		return nonNil(out), nil
	}
	// The rows and the checkpoint they reflect, in one snapshot.
	rows, err := s.Pool.Query(ctx, `select `+columns+`, cp.commit_position, cp.prepare_position
  from products left join lateral (select commit_position, prepare_position from projection_checkpoints where name = 'catalog'
  order by commit_position, prepare_position limit 1) cp on true
 where product_id = any($1)`, missing)
	if err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	defer rows.Close()
	read := map[string]wire.Product{}
	var at eventstore.Position
	for rows.Next() {
		var c, pr *int64
		p, err := scan(rows, &c, &pr)
		if err != nil {
			return nil, fmt.Errorf("products: %w", err)
		}
		if c != nil && pr != nil {
			at = eventstore.Position{Commit: uint64(*c), Prepare: uint64(*pr)}
		}
		read[p.ID] = p
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	if !at.IsZero() {
		s.Cache.Put(at, read)
	}
	return nonNil(out), nil
}

func nonNil(ps []wire.Product) []wire.Product {
	if ps == nil {
		return []wire.Product{}
	}
	return ps
}

func (s Service) list(ctx context.Context, q string, args ...any) ([]wire.Product, error) {
	rows, err := s.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("products: %w", err)
	}
	defer rows.Close()
	out := []wire.Product{}
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("products: %w", err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func pageSize(first int) (int, error) {
	switch {
	case first == 0:
		return DefaultPageSize, nil
	case first < 0 || first > MaxPageSize:
		return 0, &rpc.Error{Code: rpc.CodeInvalid, Field: "first", Message: fmt.Sprintf("must be between 1 and %d", MaxPageSize)}
	}
	return first, nil
}

// SearchProducts lists products whose name or sku starts with the query (case-insensitive), by
// name; an empty query lists every product.
func (s Service) SearchProducts(ctx context.Context, req wire.SearchProducts) (wire.ProductPage, error) {
	first, err := pageSize(req.First)
	if err != nil {
		return wire.ProductPage{}, err
	}
	if len(req.Query) > 200 {
		return wire.ProductPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "query", Message: "at most 200 characters"}
	}
	afterName, afterID := "", ""
	if req.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.After)
		name, id, ok := strings.Cut(string(b), "\x00")
		if err != nil || !ok {
			return wire.ProductPage{}, &rpc.Error{Code: rpc.CodeInvalid, Field: "after", Message: "not a cursor from this API"}
		}
		afterName, afterID = name, id
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return wire.ProductPage{}, err
	}
	prefix := likePrefix(strings.ToLower(req.Query))
	products, err := s.list(ctx, `select `+columns+` from products
 where (lower(name) like $1 or lower(sku) like $1)
   and ($2 = '' or (lower(name), product_id) > ($2, $3))
 order by lower(name), product_id limit $4`, prefix, afterName, afterID, first+1)
	if err != nil {
		return wire.ProductPage{}, err
	}
	page := wire.ProductPage{Products: products}
	if len(page.Products) > first {
		page.Products, page.HasNextPage = page.Products[:first], true
	}
	page.Cursors = make([]string, len(page.Products))
	for i, p := range page.Products {
		page.Cursors[i] = base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(p.Name) + "\x00" + p.ID))
	}
	if n := len(page.Cursors); n > 0 {
		page.EndCursor = page.Cursors[n-1]
	}
	return page, nil
}

// likePrefix escapes s for LIKE and appends the wildcard.
func likePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}

// LowStock lists products on sale with at most Threshold units available, fewest first.
func (s Service) LowStock(ctx context.Context, req wire.LowStock) ([]wire.Product, error) {
	first, err := pageSize(req.First)
	if err != nil {
		return nil, err
	}
	if req.Threshold < 0 {
		return nil, &rpc.Error{Code: rpc.CodeInvalid, Field: "threshold", Message: "must not be negative"}
	}
	if err := s.WaitFor(ctx, req.MinPosition); err != nil {
		return nil, err
	}
	return s.list(ctx, `select `+columns+` from products where not discontinued and on_hand - reserved <= $1
 order by on_hand - reserved, product_id limit $2`, req.Threshold, first)
}

// Register serves s as the catalog-queries NATS micro service until ctx ends.
func Register(ctx context.Context, nc *nats.Conn, ns wire.Namespace, log *slog.Logger, s Service) (micro.Service, error) {
	return projections.QueryService(wire.ServiceCatalogQueries, "reads the catalog", ns).Serve(ctx, nc, log,
		rpc.On("get", wire.EndpointProductByID, s.ProductByID),
		rpc.On("get_many", wire.EndpointProductsByIDs, s.ProductsByIDs),
		rpc.On("search", wire.EndpointSearchProduct, s.SearchProducts),
		rpc.On("low_stock", wire.EndpointLowStock, s.LowStock),
	)
}
