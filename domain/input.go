package domain

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxIDLength is the longest identifier (of an order, customer, product or payment) any context
// accepts, in characters.
const MaxIDLength = 100

// MaxCents bounds every amount of money the platform records: a price, a line's total, an order's
// total, a payment or a refund, in cents (ten billion units of a currency). Every such amount is an
// exact integer in JavaScript (below 2^53), and a sum of a hundred of them stays within int64.
const MaxCents = 1_000_000_000_000

// IDSeparators are the characters an identifier may hold besides ASCII letters and digits.
const IDSeparators = "-_.:"

// CheckID checks an identifier: required, 1 to MaxIDLength characters from the safe set (ASCII
// letters and digits, and the separators of IDSeparators), beginning with a letter or a digit.
// Identifiers name streams, rows, URLs, NATS keys and log lines, and people read them: so no
// slash, percent sign, dot-only segment or space; no control, bidirectional or zero-width
// character; no look-alike of another script and no emoji. One normal form comes with the set:
// an ASCII string is its own NFC, NFD, NFKC and NFKD.
func CheckID(field, v string) error {
	if v == "" || IsBlank(v) {
		return Rule(field, "is required")
	}
	if !utf8.ValidString(v) {
		return Rule(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > MaxIDLength {
		return Rule(field, fmt.Sprintf("must be at most %d characters", MaxIDLength))
	}
	for i, r := range v {
		switch {
		case r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)):
		case i == 0 && strings.ContainsRune(IDSeparators, r):
			return Rule(field, "must begin with a letter or a digit")
		case strings.ContainsRune(IDSeparators, r):
		default:
			return Rule(field, fmt.Sprintf("may hold only ASCII letters, digits and %s (found %q at %d)", strings.Join(strings.Split(IDSeparators, ""), " "), r, i))
		}
	}
	return nil
}

// CheckCents checks an amount of money in cents: 0 to MaxCents (min 1 when positive is set).
func CheckCents(field string, v int64, positive bool) error {
	switch {
	case positive && v <= 0:
		return Rule(field, "must be positive")
	case v < 0:
		return Rule(field, "must not be negative")
	case v > MaxCents:
		return Rule(field, fmt.Sprintf("must be at most %d cents", int64(MaxCents)))
	}
	return nil
}

// CheckText checks free text (a name, an address line, a reason): valid UTF-8, at most max
// characters, no control characters but tab, line feed and carriage return; required refuses blank
// text.
func CheckText(field, v string, max int, required bool) error {
	switch {
	case required && IsBlank(v):
		return Rule(field, "is required")
	case !utf8.ValidString(v):
		return Rule(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > max:
		return Rule(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.ContainsFunc(v, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' }):
		return Rule(field, "must not contain control characters")
	}
	return nil
}

// FirstError returns the first non-nil error of errs: validations of several fields read as a list.
func FirstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Printable returns s as valid UTF-8 without control characters (each replaced by a space), cut
// to max characters: for text from outside that is recorded rather than refused, such as a card
// provider's decline reason.
func Printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max])
	}
	return s
}
