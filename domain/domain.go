// Package domain holds what every bounded context shares: the kinds of error a decision can
// end in. Each context's errors wrap one of them, so one function at each edge (REST, GraphQL,
// NATS) maps any domain error to a status without knowing the context.
package domain

import (
	"errors"
	"fmt"
	"strings"

	gojson "github.com/goccy/go-json"
)

var (
	// ErrNotFound: the command or query names something that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the command is valid but the current state forbids it (an illegal transition).
	ErrConflict = errors.New("conflict")
)

// RuleError is an invalid command: a field that breaks a rule. Field uses the API's JSON path
// ("lines[1].quantity").
type RuleError struct {
	Field  string
	Reason string
}

func (e *RuleError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Rule returns a *RuleError.
func Rule(field, reason string) error { return &RuleError{Field: field, Reason: reason} }

// IsBlank reports whether s is empty after trimming spaces.
func IsBlank(s string) bool { return strings.TrimSpace(s) == "" }

// DecodeAs unmarshals an event payload into a T: the decoders of every context use it. It
// decodes with goccy/go-json, encoding/json's semantics at a fraction of its cost: event decoding
// is most of a replay's work in Go (BenchmarkDecodePlaced in domain/order compares the two).
func DecodeAs[T any](typ string, data []byte) (T, error) {
	var e T
	if err := gojson.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("decode %s: %w", typ, err)
	}
	return e, nil
}
