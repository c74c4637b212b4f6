package domain_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/domain"
)

func TestCheckIDAndText(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"plain id", domain.CheckID("id", "order-1"), true},
		{"unicode id", domain.CheckID("id", "commande-été"), true},
		{"blank id", domain.CheckID("id", "  "), false},
		{"NUL in id", domain.CheckID("id", "o\x00x"), false},
		{"newline in id", domain.CheckID("id", "o\nx"), false},
		{"DEL in id", domain.CheckID("id", "o\x7f"), false},
		{"C1 control in id", domain.CheckID("id", "o\u0085"), false},
		{"broken UTF-8 in id", domain.CheckID("id", "o\xff"), false},
		{"long id", domain.CheckID("id", strings.Repeat("é", domain.MaxIDLength)), true},
		{"too long id", domain.CheckID("id", strings.Repeat("x", domain.MaxIDLength+1)), false},
		{"text with a newline", domain.CheckText("reason", "one\ntwo\tthree", 50, false), true},
		{"empty optional text", domain.CheckText("reason", "", 50, false), true},
		{"empty required text", domain.CheckText("name", "", 50, true), false},
		{"NUL in text", domain.CheckText("name", "bad\x00name", 50, true), false},
		{"escape in text", domain.CheckText("name", "bad\x1b[2Jname", 50, true), false},
		{"broken UTF-8 in text", domain.CheckText("name", "caf\xc3", 50, true), false},
	} {
		var rule *domain.RuleError
		if tt.ok != (tt.err == nil) || (tt.err != nil && !errors.As(tt.err, &rule)) {
			t.Errorf("%s: %v, want ok=%v (or a rule error)", tt.name, tt.err, tt.ok)
		}
	}
}
