// Package domaintest runs given-when-then tests of a context's pure decisions: given past events,
// when a command, then new events, or an error of a kind, or a rule broken on a field.
package domaintest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/orderflow/orderflow/domain"
)

// Case is one given-when-then test.
type Case[E, C any] struct {
	Name  string
	Given []E
	When  C
	Then  []E
	Err   error  // an error the decision must match (errors.Is)
	Field string // a rule error on this field
}

// Run runs cases in parallel against evolve and decide at time now.
func Run[S, E, C any](t *testing.T, evolve func(S, E) S, decide func(S, C, time.Time) ([]E, error), now time.Time, cases []Case[E, C]) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			var s S
			for _, e := range tt.Given {
				s = evolve(s, e)
			}
			got, err := decide(s, tt.When, now)
			var re *domain.RuleError
			switch {
			case tt.Field != "":
				if !errors.As(err, &re) || re.Field != tt.Field {
					t.Fatalf("err = %v, want a rule error on %s", err, tt.Field)
				}
			case tt.Err != nil:
				if !errors.Is(err, tt.Err) {
					t.Fatalf("err = %v, want %v", err, tt.Err)
				}
			case err != nil:
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.Then, got); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
		})
	}
}
