// Package customer owns the customer aggregate: registration, shipping address, deactivation,
// and the rule that an e-mail address belongs to one customer.
package customer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/orderflow/orderflow/domain"
)

// Errors of the customer lifecycle.
var (
	ErrNotFound          = fmt.Errorf("customer %w", domain.ErrNotFound)
	ErrAlreadyRegistered = fmt.Errorf("customer already registered: %w", domain.ErrConflict)
	ErrDeactivated       = fmt.Errorf("customer is deactivated: %w", domain.ErrConflict)
	ErrEmailTaken        = fmt.Errorf("e-mail address already registered: %w", domain.ErrConflict)
	ErrErased            = fmt.Errorf("customer's personal data is erased: %w", domain.ErrConflict)
)

// Stream is the event stream of customer id.
func Stream(id string) string { return "customer-" + id }

// EmailStream is the stream that records which customer holds e-mail address email (normalized).
// Appending its first event with "no stream" expected is how two registrations race fairly:
// exactly one wins, without a shared table. Its name is a digest of the address, not the address:
// a stream's name is not encrypted, and outlives an erasure.
func EmailStream(email string) string {
	sum := sha256.Sum256([]byte("orderflow customer e-mail\x00" + NormalizeEmail(email)))
	return "customer_email-" + hex.EncodeToString(sum[:16])
}

// NormalizeEmail is the form in which e-mail addresses are compared.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// Address is a shipping address.
type Address struct {
	Line1      string `json:"line1"`
	Line2      string `json:"line2,omitempty"`
	City       string `json:"city"`
	PostalCode string `json:"postalCode"`
	Country    string `json:"country"`
}

// Commands.
type (
	Register struct {
		CustomerID, Name, Email string
		Address                 Address
	}
	ChangeAddress struct {
		CustomerID string
		Address    Address
	}
	Deactivate struct{ CustomerID string }
	// Erase erases the customer's personal data: Fields (those the events' types mark personal),
	// in Streams.
	Erase struct {
		CustomerID      string
		Fields, Streams []string
	}
)

// Command is one of the commands above.
type Command interface{ isCommand() }

func (Register) isCommand()      {}
func (ChangeAddress) isCommand() {}
func (Deactivate) isCommand()    {}
func (Erase) isCommand()         {}

// Event type names: a stored contract.
const (
	TypeRegistered     = "customer.registered.v1"
	TypeAddressChanged = "customer.address_changed.v1"
	TypeDeactivated    = "customer.deactivated.v1"
	TypeEmailClaimed   = "customer.email_claimed.v1"
	TypeErased         = "customer.erased.v1"
	TypePrefix         = "customer."
)

// Events.
type (
	Registered struct {
		CustomerID string    `json:"customerId" personal:"subject"`
		Name       string    `json:"name" personal:"data"`
		Email      string    `json:"email" personal:"data"`
		Address    Address   `json:"shippingAddress" personal:"data"`
		At         time.Time `json:"at"`
	}
	AddressChanged struct {
		CustomerID string    `json:"customerId" personal:"subject"`
		Address    Address   `json:"shippingAddress" personal:"data"`
		At         time.Time `json:"at"`
	}
	Deactivated struct {
		CustomerID string    `json:"customerId"`
		At         time.Time `json:"at"`
	}
	// EmailClaimed is the only event of an EmailStream.
	EmailClaimed struct {
		Email      string `json:"email" personal:"data"`
		CustomerID string `json:"customerId" personal:"subject"`
	}
	// Erased: the customer's personal data was erased (their data key destroyed): every event of
	// theirs reads with it redacted from now on. It records what and where, as the receipt.
	Erased struct {
		CustomerID string `json:"customerId"`
		// Fields are the personal fields erased; Streams, the streams whose events held them.
		Fields  []string  `json:"fields"`
		Streams []string  `json:"streams"`
		At      time.Time `json:"at"`
	}
)

// Event is a customer event: one of this package's event types, and no other.
type Event interface {
	domain.Event
	customerEvent()
}

func (Registered) EventType() string     { return TypeRegistered }
func (AddressChanged) EventType() string { return TypeAddressChanged }
func (Deactivated) EventType() string    { return TypeDeactivated }
func (EmailClaimed) EventType() string   { return TypeEmailClaimed }
func (Erased) EventType() string         { return TypeErased }

func (Registered) customerEvent()     {}
func (AddressChanged) customerEvent() {}
func (Deactivated) customerEvent()    {}
func (EmailClaimed) customerEvent()   {}
func (Erased) customerEvent()         {}

// Personal are the customer events that hold personal data (struct tags personal:"…"), the fields
// an erasure erases.
var Personal = []domain.Event{Registered{}, AddressChanged{}, EmailClaimed{}}

// State of a customer. It holds no personal data: the state of a stream may be kept (a snapshot,
// a command service's cache) where an erasure does not reach.
type State struct {
	ID          string
	Registered  bool
	Deactivated bool
	Erased      bool
}

// Decide returns the events of command c in state s, or why it cannot be carried out. Pure.
func Decide(s State, c Command, now time.Time) ([]Event, error) {
	now = now.UTC()
	if err := Validate(c); err != nil {
		return nil, err
	}
	switch c := c.(type) {
	case Register:
		if s.Registered {
			return nil, ErrAlreadyRegistered
		}
		return []Event{Registered{CustomerID: c.CustomerID, Name: strings.TrimSpace(c.Name), Email: NormalizeEmail(c.Email), Address: c.Address, At: now}}, nil
	case ChangeAddress:
		if err := active(s); err != nil {
			return nil, err
		}
		return []Event{AddressChanged{CustomerID: s.ID, Address: c.Address, At: now}}, nil
	case Deactivate:
		if err := active(s); err != nil {
			return nil, err
		}
		return []Event{Deactivated{CustomerID: s.ID, At: now}}, nil
	case Erase:
		switch {
		case !s.Registered:
			return nil, ErrNotFound
		case s.Erased:
			return nil, ErrErased
		}
		return []Event{Erased{CustomerID: s.ID, Fields: c.Fields, Streams: c.Streams, At: now}}, nil
	}
	return nil, fmt.Errorf("customer: unknown command %T", c)
}

func active(s State) error {
	switch {
	case !s.Registered:
		return ErrNotFound
	case s.Erased:
		return ErrErased
	case s.Deactivated:
		return ErrDeactivated
	}
	return nil
}

// Evolve returns the state after e.
func Evolve(s State, e Event) State {
	switch e := e.(type) {
	case Registered:
		s.ID, s.Registered = e.CustomerID, true
	case Deactivated:
		s.Deactivated = true
	case Erased:
		s.Deactivated, s.Erased = true, true
	}
	return s
}

// Limits of a customer's fields, in characters (an e-mail address: in bytes, as RFC 5321).
const (
	MaxNameLength        = 200
	MaxEmailLength       = 254
	MaxAddressLineLength = 200
	MaxCityLength        = 100
	MaxPostalCodeLength  = 20
)

// Validate checks a command's fields, whatever the state: identifiers and text are valid UTF-8
// without control characters and within their lengths. Decide calls it; command services call it
// before they load a stream.
func Validate(c Command) error {
	switch c := c.(type) {
	case Register:
		return domain.FirstError(domain.CheckID("customerId", c.CustomerID), domain.CheckText("name", c.Name, MaxNameLength, true),
			ValidateEmail(c.Email), validateAddress(c.Address))
	case ChangeAddress:
		return domain.FirstError(domain.CheckID("customerId", c.CustomerID), validateAddress(c.Address))
	case Deactivate:
		return domain.CheckID("customerId", c.CustomerID)
	case Erase:
		return domain.CheckID("customerId", c.CustomerID)
	}
	return nil
}

// ValidateEmail checks that email is one plain address.
func ValidateEmail(email string) error {
	e := NormalizeEmail(email)
	a, err := mail.ParseAddress(e)
	if e == "" || len(e) > MaxEmailLength || domain.CheckText("email", e, MaxEmailLength, true) != nil || strings.ContainsFunc(e, unicode.IsSpace) || err != nil || a.Address != e || !strings.Contains(e[strings.LastIndex(e, "@")+1:], ".") {
		return domain.Rule("email", "must be an e-mail address such as ada@example.com")
	}
	return nil
}

func validateAddress(a Address) error {
	const f = "shippingAddress."
	if err := domain.FirstError(domain.CheckText(f+"line1", a.Line1, MaxAddressLineLength, true), domain.CheckText(f+"line2", a.Line2, MaxAddressLineLength, false),
		domain.CheckText(f+"city", a.City, MaxCityLength, true), domain.CheckText(f+"postalCode", a.PostalCode, MaxPostalCodeLength, true)); err != nil {
		return err
	}
	if len(a.Country) != 2 || strings.Trim(a.Country, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		return domain.Rule("shippingAddress.country", "must be an ISO 3166 alpha-2 code such as FR")
	}
	return nil
}

// Codec encodes and decodes the customer events.
var Codec = domain.NewCodec("customer",
	domain.Of[Registered, Event](),
	domain.Of[AddressChanged, Event](),
	domain.Of[Deactivated, Event](),
	domain.Of[EmailClaimed, Event](),
	domain.Of[Erased, Event](),
)
