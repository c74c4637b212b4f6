package commands_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/orderflow/orderflow/commands"
	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/internal/rpc"
)

// TestClassify: the error kinds every command service answers with.
func TestClassify(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		code string
	}{
		{domain.Rule("lines", "empty"), rpc.CodeInvalid},
		{fmt.Errorf("order: %w", domain.ErrNotFound), rpc.CodeNotFound},
		{fmt.Errorf("cancelled: %w", domain.ErrConflict), rpc.CodeConflict},
		{fmt.Errorf("order-1 after 12 attempts: %w", commands.ErrTooBusy), rpc.CodeUnavailable}, // transient, retried
		{errors.New("disk on fire"), rpc.CodeInternal},
	}
	for _, c := range cases {
		if got := commands.Classify(c.err); got.Code != c.code {
			t.Errorf("Classify(%v) = %s, want %s", c.err, got.Code, c.code)
		}
	}
	if got := commands.Classify(errors.New("secret detail")); got.Message != "internal error" {
		t.Errorf("internal errors leak their detail: %q", got.Message)
	}
}
