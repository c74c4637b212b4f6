// Package personal keeps personal data out of the event log's plain text: the fields an event's Go
// type marks personal are encrypted, per person, with that person's data key (AES-256-GCM) when the
// event is appended, and decrypted for every reader. Erasing a person destroys the key (Keys): from
// then on every reader sees the fields redacted (Redacted, a stable placeholder of each field's
// type), rebuilds included, while the log itself is never rewritten. Fields not marked stay
// readable.
//
// An event type opts in with struct tags: `personal:"subject"` on the field holding the person's
// id, `personal:"data"` on each personal field:
//
//	type Registered struct {
//		CustomerID string  `json:"customerId" personal:"subject"`
//		Name       string  `json:"name" personal:"data"`
//		...
//	}
package personal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/orderflow/orderflow/domain"
	"github.com/orderflow/orderflow/eventstore"
)

// Redacted is what an erased person's text fields read as.
const Redacted = "[erased]"

// envelope is the payload member that holds an event's personal fields, encrypted.
const envelope = "$personal"

// Spec says, per event type, which payload fields are personal and whose they are.
type Spec map[string]fields

type fields struct {
	subject  string                     // the JSON member holding the person's id
	data     []string                   // the personal members
	redacted map[string]json.RawMessage // what each reads as once erased
}

// SpecOf reads the personal struct tags of events (one value of each type).
func SpecOf(events ...domain.Event) Spec {
	s := Spec{}
	for _, e := range events {
		t := reflect.TypeOf(e)
		f := fields{redacted: map[string]json.RawMessage{}}
		for i := range t.NumField() {
			sf := t.Field(i)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			switch sf.Tag.Get("personal") {
			case "subject":
				f.subject = name
			case "data":
				f.data = append(f.data, name)
				f.redacted[name], _ = json.Marshal(fill(reflect.New(sf.Type).Elem()).Interface())
			}
		}
		if f.subject == "" || len(f.data) == 0 {
			panic(fmt.Sprintf("personal.SpecOf: %T needs a personal:\"subject\" field and at least one personal:\"data\" field", e))
		}
		s[e.EventType()] = f
	}
	return s
}

// Fields are the personal fields of spec's event types (their JSON names), sorted: what an
// erasure erases.
func (s Spec) Fields() []string {
	var out []string
	for _, f := range s {
		out = append(out, f.data...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Redact is a T whose every text is Redacted (every other value zero): what a personal field of
// type T reads as once its person is erased, for a read model to write in place of its copy.
func Redact[T any]() T {
	var v T
	fill(reflect.ValueOf(&v).Elem())
	return v
}

// fill fills v's text with Redacted, leaving every other kind of value zero.
func fill(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		v.SetString(Redacted)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	}
	return v
}

// Protect returns store with spec's personal fields encrypted on append and decrypted (or redacted,
// once erased) on every read.
func Protect(store eventstore.Store, spec Spec, keys Keys) eventstore.Store {
	p := protector{spec: spec, keys: keys}
	return eventstore.WithTransform(store, eventstore.Transform{Write: p.write, Read: p.read})
}

type protector struct {
	spec Spec
	keys Keys
}

func (p protector) write(ctx context.Context, _ string, events []eventstore.EventData) ([]eventstore.EventData, error) {
	var out []eventstore.EventData
	for i, e := range events {
		f, ok := p.spec[e.Type]
		if !ok {
			continue
		}
		if out == nil {
			out = append([]eventstore.EventData(nil), events...) // the caller's slice stays as it was
		}
		data, err := p.seal(ctx, e.Type, f, e.Data)
		if err != nil {
			return nil, err
		}
		out[i].Data = data
	}
	if out == nil {
		return events, nil
	}
	return out, nil
}

func (p protector) seal(ctx context.Context, typ string, f fields, data []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", eventstore.ErrInvalid, typ, err)
	}
	subject, err := subjectOf(m, f)
	if err != nil {
		return nil, fmt.Errorf("%w: %s holds personal data: %v", eventstore.ErrInvalid, typ, err)
	}
	key, err := p.keys.Key(ctx, subject, true)
	if err != nil {
		return nil, err
	}
	secret := map[string]json.RawMessage{}
	for _, name := range f.data {
		if v, ok := m[name]; ok {
			secret[name] = v
			delete(m, name)
		}
	}
	plain, _ := json.Marshal(secret)
	sealed, err := encrypt(key, plain, aad(typ, subject))
	if err != nil {
		return nil, err
	}
	m[envelope], _ = json.Marshal(sealed)
	return json.Marshal(m)
}

func (p protector) read(ctx context.Context, events []eventstore.RecordedEvent) ([]eventstore.RecordedEvent, error) {
	for i, e := range events {
		f, ok := p.spec[e.Type]
		if !ok {
			continue
		}
		data, err := p.open(ctx, e.Type, f, e.Data)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		events[i].Data = data
	}
	return events, nil
}

// open puts an event's personal fields back in the clear, or redacted when the person's key is
// gone. An event written before its type was protected holds them in the clear: those are
// redacted too once the person is erased.
func (p protector) open(ctx context.Context, typ string, f fields, data []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return data, nil // not ours to judge: the reader's decoder says what is wrong
	}
	subject, err := subjectOf(m, f)
	if err != nil {
		return data, nil
	}
	sealed, protected := m[envelope]
	key, err := p.keys.Key(ctx, subject, false)
	switch {
	case errors.Is(err, ErrErased) || errors.Is(err, ErrNoKey) && protected:
		for _, name := range f.data {
			m[name] = f.redacted[name]
		}
	case err != nil && !errors.Is(err, ErrNoKey):
		return nil, err
	case protected:
		var b []byte
		if err := json.Unmarshal(sealed, &b); err != nil {
			return nil, fmt.Errorf("personal: %s of %s: %w", typ, subject, err)
		}
		plain, err := decrypt(key, b, aad(typ, subject))
		if err != nil {
			return nil, fmt.Errorf("personal: %s of %s: %w", typ, subject, err)
		}
		var secret map[string]json.RawMessage
		if err := json.Unmarshal(plain, &secret); err != nil {
			return nil, fmt.Errorf("personal: %s of %s: %w", typ, subject, err)
		}
		for name, v := range secret {
			m[name] = v
		}
	default:
		return data, nil // in the clear, and its person not erased
	}
	delete(m, envelope)
	return json.Marshal(m)
}

func subjectOf(m map[string]json.RawMessage, f fields) (string, error) {
	var subject string
	if err := json.Unmarshal(m[f.subject], &subject); err != nil || subject == "" {
		return "", fmt.Errorf("no person named in %q", f.subject)
	}
	return subject, nil
}

// aad binds a ciphertext to its event type and person: it cannot be moved to another event.
func aad(typ, subject string) []byte { return []byte(typ + "\x00" + subject) }

func encrypt(key, plain, aad []byte) ([]byte, error) {
	gcm, err := aead(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(nonce, nonce, plain, aad), nil
}

func decrypt(key, sealed, aad []byte) ([]byte, error) {
	gcm, err := aead(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < gcm.NonceSize() {
		return nil, errors.New("ciphertext too short")
	}
	return gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], aad)
}

func aead(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
