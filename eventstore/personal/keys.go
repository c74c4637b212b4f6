package personal

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of Keys.
var (
	// ErrErased: the person's key was destroyed; their personal data reads as Redacted for ever.
	ErrErased = errors.New("personal data erased")
	// ErrNoKey: the person has no key (none of their data was ever protected).
	ErrNoKey = errors.New("no data key")
)

// Keys holds one data key per person. A key service (KMS) can stand behind it as well as the
// PostgreSQL table of PostgresKeys.
type Keys interface {
	// Key returns subject's 32-byte data key, making one first if create is set and it has none.
	// ErrErased once Destroy ran; ErrNoKey without create when it has none.
	Key(ctx context.Context, subject string, create bool) ([]byte, error)
	// Destroy erases subject's key for ever and answers when (the first time it ran). It is safe
	// to call again.
	Destroy(ctx context.Context, subject string) (time.Time, error)
	// Destroyed answers when subject's key was destroyed, or the zero time if it was not.
	Destroyed(ctx context.Context, subject string) (time.Time, error)
}

// Schema is the PostgreSQL schema of the data keys: apart from every read model, so that no
// rebuild, dump or grant of a read model reaches them.
const Schema = "personal_keys"

// PostgresKeys keeps data keys in a table of their own schema; an erased person keeps a row
// without key, so that no key is made for them again.
type PostgresKeys struct{ Pool *pgxpool.Pool }

// Migrate creates the table.
func (k PostgresKeys) Migrate(ctx context.Context) error {
	_, err := k.Pool.Exec(ctx, `create table if not exists data_keys (
  subject text primary key,
  key bytea,
  created_at timestamptz not null default now(),
  erased_at timestamptz,
  check ((key is null) = (erased_at is not null)))`)
	return err
}

// Key implements Keys.
func (k PostgresKeys) Key(ctx context.Context, subject string, create bool) ([]byte, error) {
	if create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if _, err := k.Pool.Exec(ctx, `insert into data_keys (subject, key) values ($1, $2) on conflict (subject) do nothing`, subject, key); err != nil {
			return nil, fmt.Errorf("data key of %s: %w", subject, err)
		}
	}
	var key []byte
	err := k.Pool.QueryRow(ctx, `select key from data_keys where subject = $1`, subject).Scan(&key)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrNoKey
	case err != nil:
		return nil, fmt.Errorf("data key of %s: %w", subject, err)
	case key == nil:
		return nil, ErrErased
	}
	return key, nil
}

// Destroy implements Keys.
func (k PostgresKeys) Destroy(ctx context.Context, subject string) (time.Time, error) {
	var at time.Time
	err := k.Pool.QueryRow(ctx, `insert into data_keys (subject, key, erased_at) values ($1, null, now())
on conflict (subject) do update set key = null, erased_at = coalesce(data_keys.erased_at, now())
returning erased_at`, subject).Scan(&at)
	if err != nil {
		return time.Time{}, fmt.Errorf("destroy the data key of %s: %w", subject, err)
	}
	return at.UTC(), nil
}

// Destroyed implements Keys.
func (k PostgresKeys) Destroyed(ctx context.Context, subject string) (time.Time, error) {
	var at *time.Time
	err := k.Pool.QueryRow(ctx, `select erased_at from data_keys where subject = $1`, subject).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) || err == nil && at == nil {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("data key of %s: %w", subject, err)
	}
	return at.UTC(), nil
}

// Cache keeps keys (and that a person is erased) in memory for a while, a bounded number of them: a read
// of many events of few people asks the store once each. Another process's Destroy is seen within
// the TTL; this one's at once. Make one with NewCache.
type Cache struct {
	keys Keys
	ttl  time.Duration
	max  int

	mu      sync.Mutex
	entries map[string]cached
}

type cached struct {
	key     []byte
	err     error
	expires time.Time
}

// NewCache returns keys cached for ttl, at most max at once.
func NewCache(keys Keys, ttl time.Duration, max int) *Cache {
	return &Cache{keys: keys, ttl: ttl, max: max, entries: map[string]cached{}}
}

// Key implements Keys.
func (c *Cache) Key(ctx context.Context, subject string, create bool) ([]byte, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[subject]
	c.mu.Unlock()
	if ok && now.Before(e.expires) && !(create && errors.Is(e.err, ErrNoKey)) {
		return e.key, e.err
	}
	key, err := c.keys.Key(ctx, subject, create)
	if err != nil && !errors.Is(err, ErrErased) && !errors.Is(err, ErrNoKey) {
		return nil, err // an outage is not remembered
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for s, old := range c.entries {
			if now.After(old.expires) {
				delete(c.entries, s)
			}
		}
		for s := range c.entries { // still full: any goes, the cache only saves reads
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, s)
		}
	}
	c.entries[subject] = cached{key: key, err: err, expires: now.Add(c.ttl)}
	return key, err
}

// Destroyed implements Keys (not cached: a receipt's question).
func (c *Cache) Destroyed(ctx context.Context, subject string) (time.Time, error) {
	return c.keys.Destroyed(ctx, subject)
}

// Destroy implements Keys, and forgets the key here at once.
func (c *Cache) Destroy(ctx context.Context, subject string) (time.Time, error) {
	at, err := c.keys.Destroy(ctx, subject)
	c.mu.Lock()
	delete(c.entries, subject)
	c.mu.Unlock()
	return at, err
}
