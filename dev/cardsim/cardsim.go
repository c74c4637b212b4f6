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
	mu        sync.Mutex
	opts      Options
	decisions map[string]Decision
	calls     int
}

// New returns a gateway with opts.
func New(opts Options) *Server { return &Server{opts: opts, decisions: map[string]Decision{}} }

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
		s.mu.Lock()
		d, seen := s.decisions[req.PaymentID]
		if !seen {
			d = decide(req, opts.DeclineRate)
			s.decisions[req.PaymentID] = d
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(d)
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
