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
		{"uuid id", domain.CheckID("id", "0b7c8f6e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"), true},
		{"separators", domain.CheckID("id", "a.b_c:d-e"), true},
		{"accented id", domain.CheckID("id", "commande-été"), false},
		{"slash", domain.CheckID("id", "a/b"), false},
		{"dot dot", domain.CheckID("id", ".."), false},
		{"encoded slash", domain.CheckID("id", "a%2Fb"), false},
		{"leading separator", domain.CheckID("id", "-x"), false},
		{"space", domain.CheckID("id", "a b"), false},
		{"right-to-left override", domain.CheckID("id", "abc\u202Egpj"), false},
		{"zero-width space", domain.CheckID("id", "ab\u200Bc"), false},
		{"Cyrillic look-alike", domain.CheckID("id", "\u043erder"), false},
		{"emoji", domain.CheckID("id", "order-\U0001F600"), false},
		{"fullwidth digit", domain.CheckID("id", "o-\uFF11"), false},
		{"blank id", domain.CheckID("id", "  "), false},
		{"NUL in id", domain.CheckID("id", "o\x00x"), false},
		{"newline in id", domain.CheckID("id", "o\nx"), false},
		{"DEL in id", domain.CheckID("id", "o\x7f"), false},
		{"C1 control in id", domain.CheckID("id", "o\u0085"), false},
		{"broken UTF-8 in id", domain.CheckID("id", "o\xff"), false},
		{"long id", domain.CheckID("id", strings.Repeat("x", domain.MaxIDLength)), true},
		{"too long id", domain.CheckID("id", strings.Repeat("x", domain.MaxIDLength+1)), false},
		{"cents", domain.CheckCents("price", domain.MaxCents, false), true},
		{"free", domain.CheckCents("price", 0, false), true},
		{"too many cents", domain.CheckCents("price", domain.MaxCents+1, false), false},
		{"negative cents", domain.CheckCents("price", -1, false), false},
		{"zero refund", domain.CheckCents("amount", 0, true), false},
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
