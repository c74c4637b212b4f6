package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/orderflow/orderflow/wire"
)

// IdempotencyTTL is how long an Idempotency-Key is remembered.
const IdempotencyTTL = 24 * time.Hour

// abandonMargin: a request still "in progress" this long after its gateway's request timeout
// died with its gateway (or lost its answer to an outage); its key may be taken over.
const abandonMargin = 5 * time.Second

// IdempotencyKeys remembers, for each Idempotency-Key, the request it came with and the response
// it got, in a NATS JetStream key-value bucket shared by every gateway replica. Entries expire
// after IdempotencyTTL.
type IdempotencyKeys struct {
	kv jetstream.KeyValue
}

// IdempotencyBucket is the key-value bucket of namespace ns's Idempotency-Key records.
func IdempotencyBucket(ns wire.Namespace) string {
	if ns == "" {
		ns = wire.DefaultNamespace
	}
	return strings.NewReplacer(".", "_", "-", "_").Replace(string(ns)) + "_idempotency"
}

// NewIdempotencyKeys opens (or creates) the bucket of namespace ns.
func NewIdempotencyKeys(ctx context.Context, nc *nats.Conn, ns wire.Namespace) (*IdempotencyKeys, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("idempotency keys: %w", err)
	}
	if ns == "" {
		ns = wire.DefaultNamespace
	}
	bucket := IdempotencyBucket(ns)
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucket, Description: "Idempotency-Key records of the orderflow gateway", TTL: IdempotencyTTL, History: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency keys bucket %s (NATS needs JetStream): %w", bucket, err)
	}
	return &IdempotencyKeys{kv: kv}, nil
}

// idempotencyRecord is what a key holds.
type idempotencyRecord struct {
	Fingerprint string            `json:"fingerprint"`
	Started     time.Time         `json:"started"`
	Done        bool              `json:"done"`
	Status      int               `json:"status,omitempty"`
	Header      map[string]string `json:"header,omitempty"`
	Body        []byte            `json:"body,omitempty"`
}

// replayedHeaders are the response headers a replay repeats.
var replayedHeaders = []string{"Content-Type", "Location", "X-Consistency-Position"}

// idempotent makes a POST with an Idempotency-Key safe to retry: the first request runs and its
// response is stored; a retry with the same key and the same method, path and body gets that
// response again (status and body, with Idempotent-Replayed: true); the same key with another
// request is 422; a retry while the first is still running is 409 with Retry-After. Keys are the
// caller's own: another caller's same key is another record. A request that failed on our side
// (5xx) leaves nothing: its record is deleted (retried in the background while NATS is away), and
// a record still in progress after the request timeout is taken over by a retry.
func (g *gateway) idempotent(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || g.opts.Idempotency == nil {
			next.ServeHTTP(w, r)
			return
		}
		if len(key) > 255 {
			writeProblem(w, r, &problem{Status: http.StatusBadRequest, Type: "invalid-idempotency-key", Title: "Invalid Idempotency-Key", Detail: "the key must be at most 255 characters"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, r, &problem{Status: http.StatusRequestEntityTooLarge, Type: "too-large", Title: "Request body too large", Detail: fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes)})
			return
		}
		if err != nil {
			writeProblem(w, r, &problem{Status: http.StatusBadRequest, Type: "malformed", Title: "Malformed request body", Detail: err.Error()})
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(body)))
		fingerprint := hex.EncodeToString(sum[:])
		k := sha256.Sum256([]byte(callerKey(r.Context()) + "\n" + key))
		kvKey := hex.EncodeToString(k[:])

		if g.opts.NC != nil && !g.opts.NC.IsConnected() {
			// The key store is a NATS bucket: answer now rather than wait in the reconnect buffer.
			writeProblem(w, r, &problem{Status: http.StatusServiceUnavailable, Type: "unavailable", Title: "Service unavailable", Detail: "NATS is not connected; retry"})
			return
		}
		rev, existing, err := g.opts.Idempotency.begin(r.Context(), kvKey, fingerprint, g.opts.Security.RequestTimeout+abandonMargin)
		if err != nil {
			g.log.Error("idempotency store", "err", err)
			writeProblem(w, r, &problem{Status: http.StatusServiceUnavailable, Type: "unavailable", Title: "Service unavailable", Detail: "the idempotency store is unavailable; retry"})
			return
		}
		switch {
		case existing == nil:
		case existing.Fingerprint != fingerprint:
			writeProblem(w, r, &problem{Status: http.StatusUnprocessableEntity, Type: "idempotency-key-reused", Title: "Idempotency-Key reused",
				Detail: "this Idempotency-Key was used with another request (method, path or body); use a new key for a new request", Field: "Idempotency-Key"})
			return
		case !existing.Done:
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, &problem{Status: http.StatusConflict, Type: "idempotency-key-in-progress", Title: "Request in progress",
				Detail: "a request with this Idempotency-Key is still running; retry shortly"})
			return
		default:
			for k, v := range existing.Header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(existing.Status)
			_, _ = w.Write(existing.Body)
			return
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		// Store what the client got; forget a failure of ours so that a retry runs again.
		ctx := context.WithoutCancel(r.Context())
		if rec.status >= 500 {
			go g.opts.Idempotency.forget(ctx, kvKey, rev, g.log)
			return
		}
		done := idempotencyRecord{Fingerprint: fingerprint, Done: true, Status: rec.status, Body: rec.body.Bytes(), Header: map[string]string{}}
		for _, h := range replayedHeaders {
			if v := rec.Header().Get(h); v != "" {
				done.Header[h] = v
			}
		}
		data, _ := json.Marshal(done)
		if _, err := g.opts.Idempotency.kv.Update(ctx, kvKey, data, rev); err != nil {
			g.log.Error("idempotency store: keep response", "err", err)
		}
	})
}

// begin claims key for a request with fingerprint, or returns the record already there. The
// revision is the claim's, for the update that stores the response.
func (s *IdempotencyKeys) begin(ctx context.Context, key, fingerprint string, abandonAfter time.Duration) (uint64, *idempotencyRecord, error) {
	pending, _ := json.Marshal(idempotencyRecord{Fingerprint: fingerprint, Started: time.Now()})
	for attempt := 0; attempt < 3; attempt++ {
		rev, err := s.kv.Create(ctx, key, pending)
		if err == nil {
			return rev, nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, nil, err
		}
		entry, err := s.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired or deleted in between
		}
		if err != nil {
			return 0, nil, err
		}
		var rec idempotencyRecord
		if err := json.Unmarshal(entry.Value(), &rec); err != nil {
			return 0, nil, err
		}
		if !rec.Done && rec.Fingerprint == fingerprint && time.Since(rec.Started) > abandonAfter {
			// The first request's gateway died: take the key over.
			if rev, err := s.kv.Update(ctx, key, pending, entry.Revision()); err == nil {
				return rev, nil, nil
			}
			continue
		}
		return entry.Revision(), &rec, nil
	}
	return 0, nil, errors.New("idempotency key keeps changing")
}

// forget deletes the claim of a request that failed on our side, so that a retry runs again. NATS
// may be what failed: it tries for a minute. A claim it cannot delete is taken over by a retry
// once abandoned (begin).
func (s *IdempotencyKeys) forget(ctx context.Context, key string, rev uint64, log *slog.Logger) {
	for attempt := range 30 {
		err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		var apiErr *jetstream.APIError
		if err == nil || errors.As(err, &apiErr) { // deleted, or changed since: not ours any more
			return
		}
		if attempt == 29 {
			log.Warn("idempotency store: forget a failed request", "err", err)
			return
		}
		time.Sleep(2 * time.Second)
	}
}

// recorder captures a response while writing it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}
