// Package cardsim simulates a card payment gateway outside the platform, for `orderflow serve
// --target=payment-provider`: configurable latency, decline rate and outage. Decisions are
// idempotent by payment id, as a real gateway's are by idempotency key.
package cardsim

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"sync"
	"time"
)

// Options configure the simulation.
type Options struct {
	// Latency of every authorization.
	Latency time.Duration
	// DeclineRate in [0, 1]: the share of payments declined, chosen by payment id (stable).
	DeclineRate float64
	// Outage makes every authorization answer 503 until turned off (PUT /v1/outage).
	Outage bool
	// Remember is how many payments' answers are kept for their retries (default 100,000): a
	// retry of a payment older than that is decided again, from its request alone (the same answer
	// unless the amount changed), so that the gateway's memory stays bounded however long it runs.
	Remember int
}

// Request is an authorization request.
type Request struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
}

// Decision is the gateway's answer.
type Decision struct {
	Approved      bool   `json:"approved"`
	DeclineReason string `json:"declineReason,omitempty"`
	Ref           string `json:"ref,omitempty"`
}

// MaxAmountCents: larger amounts are declined.
const MaxAmountCents = 1_000_000_00

// Server is the simulated gateway.
type Server struct {
	mu    sync.Mutex
	opts  Options
	calls int
	// The answers given, by payment id, in two generations of at most opts.Remember each: when
	// recent fills up, it becomes older and older is dropped.
	recent, older map[string]Decision
}

// New returns a gateway with opts.
func New(opts Options) *Server {
	if opts.Remember <= 0 {
		opts.Remember = 100_000
	}
	return &Server{opts: opts, recent: map[string]Decision{}}
}

// decision is the answer for req: the one given before, if remembered, else a new one.
func (s *Server) decision(req Request) Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.recent[req.PaymentID]; ok {
		return d
	}
	d, ok := s.older[req.PaymentID]
	if !ok {
		d = decide(req, s.opts.DeclineRate)
	}
	if len(s.recent) >= s.opts.Remember {
		s.older, s.recent = s.recent, make(map[string]Decision, len(s.recent))
	}
	s.recent[req.PaymentID] = d
	return d
}

// SetOutage turns the outage on or off.
func (s *Server) SetOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Outage = on
}

// Calls is how many authorizations were asked (outages included).
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Handler serves POST /v1/authorizations, PUT /v1/outage {"outage": bool} and GET /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("PUT /v1/outage", func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Outage bool }
		if json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, `want {"outage": true|false}`, http.StatusBadRequest)
			return
		}
		s.SetOutage(body.Outage)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/authorizations", func(w http.ResponseWriter, r *http.Request) {
		var req Request
		if json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req) != nil || req.PaymentID == "" || req.AmountCents <= 0 {
			http.Error(w, "want paymentId, orderId and a positive amountCents", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.calls++
		opts := s.opts
		s.mu.Unlock()
		if opts.Outage {
			http.Error(w, "gateway unavailable", http.StatusServiceUnavailable)
			return
		}
		select {
		case <-time.After(opts.Latency):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.decision(req))
	})
	return mux
}

func decide(req Request, declineRate float64) Decision {
	h := fnv.New32a()
	_, _ = h.Write([]byte(req.PaymentID))
	switch {
	case req.AmountCents > MaxAmountCents:
		return Decision{DeclineReason: "amount over limit"}
	case float64(h.Sum32()%10000)/10000 < declineRate:
		return Decision{DeclineReason: "card declined"}
	}
	return Decision{Approved: true, Ref: "auth_" + req.PaymentID}
}
