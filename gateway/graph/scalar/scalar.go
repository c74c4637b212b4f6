// Package scalar holds the custom scalars of the GraphQL schema, as gqlgen marshals them.
package scalar

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/orderflow/orderflow/domain"
)

// MarshalCents writes an amount of money in cents (the Cents scalar) as a JSON number.
func MarshalCents(v int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { io.WriteString(w, strconv.FormatInt(v, 10)) }) //nolint:errcheck // gqlgen's writers do not fail
}

// UnmarshalCents reads a Cents argument: an integer from 0 to domain.MaxCents, as a JSON number
// (a literal or a variable); anything else is an error gqlgen answers BAD_USER_INPUT.
func UnmarshalCents(v any) (int64, error) {
	var n int64
	switch v := v.(type) {
	case int64:
		n = v
	case int:
		n = int64(v)
	case json.Number:
		i, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("Cents must be a whole number of cents, not %s", v)
		}
		n = i
	case float64:
		if v != float64(int64(v)) || v < 0 || v > domain.MaxCents {
			return 0, fmt.Errorf("Cents must be a whole number of cents from 0 to %d", int64(domain.MaxCents))
		}
		n = int64(v)
	default:
		return 0, fmt.Errorf("Cents must be a number, not %T", v)
	}
	if n < 0 || n > domain.MaxCents {
		return 0, fmt.Errorf("Cents must be from 0 to %d", int64(domain.MaxCents))
	}
	return n, nil
}
