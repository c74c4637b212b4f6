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

// CheckID checks an identifier: required, at most MaxIDLength characters, valid UTF-8 and
// without control characters. Identifiers name streams, rows and subjects: a NUL byte or a broken
// UTF-8 sequence that passed here would be refused by PostgreSQL much later, in a projector.
func CheckID(field, v string) error {
	if IsBlank(v) {
		return Rule(field, "is required")
	}
	if err := CheckText(field, v, MaxIDLength, true); err != nil {
		return err
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return Rule(field, "must not contain control characters")
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
