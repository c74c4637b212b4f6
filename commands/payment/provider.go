package payment

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
)

// ErrProviderUnavailable: the card provider cannot be reached now (down, slow, or the breaker is
// open). The payment stays pending and is asked again later; the order is not failed.
var ErrProviderUnavailable = errors.New("payment provider unavailable")

// HTTPProvider asks a card gateway over HTTP: each call has a timeout, failed calls are retried
// with exponential backoff and jitter, and a circuit breaker stops calling a gateway that keeps
// failing, then lets a trial call through after a pause.
type HTTPProvider struct {
	url     string
	client  *http.Client
	breaker *gobreaker.CircuitBreaker[Answer]
	retries int
}

// HTTPProviderOptions tune an HTTPProvider; zero values take the defaults.
type HTTPProviderOptions struct {
	Timeout       time.Duration // per call; default 2s
	Retries       int           // after the first call; default 2
	OpenFor       time.Duration // how long the breaker stays open; default 5s
	TripAfter     uint32        // consecutive failures that open the breaker; default 5
	OnStateChange func(from, to string)
}

// NewHTTPProvider returns a provider for the gateway at baseURL (POST baseURL/v1/authorizations).
func NewHTTPProvider(baseURL string, opts HTTPProviderOptions) *HTTPProvider {
	if opts.Timeout <= 0 {
		opts.Timeout = 1500 * time.Millisecond
	}
	if opts.Retries <= 0 {
		opts.Retries = 2
	}
	if opts.OpenFor <= 0 {
		opts.OpenFor = 5 * time.Second
	}
	if opts.TripAfter == 0 {
		opts.TripAfter = 5
	}
	st := gobreaker.Settings{
		Name: "payment-provider", Timeout: opts.OpenFor, MaxRequests: 1,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= opts.TripAfter },
	}
	if opts.OnStateChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { opts.OnStateChange(from.String(), to.String()) }
	}
	// Connections to the gateway are kept for the calls that overlap, not 2 as Go's default
	// transport keeps per host: past those, every call dialled a connection and dropped it.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = ProviderConns
	return &HTTPProvider{url: baseURL + "/v1/authorizations", client: &http.Client{Timeout: opts.Timeout, Transport: otelhttp.NewTransport(transport)}, breaker: gobreaker.NewCircuitBreaker[Answer](st), retries: opts.Retries}
}

// ProviderConns is how many idle connections to the card gateway a payment service keeps: as
// many as the calls it makes at once (its queued commands, 32 at a time, each one call).
const ProviderConns = 64

// BreakerState is "closed", "half-open" or "open".
func (p *HTTPProvider) BreakerState() string { return p.breaker.State().String() }

// Authorize implements Provider.
func (p *HTTPProvider) Authorize(ctx context.Context, paymentID, orderID string, amountCents int64) (Answer, error) {
	a, err := p.breaker.Execute(func() (Answer, error) { return p.withRetries(ctx, paymentID, orderID, amountCents) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return Answer{}, fmt.Errorf("%w: circuit breaker %s", ErrProviderUnavailable, p.breaker.State())
	}
	return a, err
}

func (p *HTTPProvider) withRetries(ctx context.Context, paymentID, orderID string, amountCents int64) (Answer, error) {
	var err error
	for attempt := 0; attempt <= p.retries; attempt++ {
		if attempt > 0 {
			backoff := time.Duration(1<<attempt) * 50 * time.Millisecond
			backoff += time.Duration(rand.Int64N(int64(backoff))) // jitter: up to as much again
			select {
			case <-ctx.Done():
				return Answer{}, fmt.Errorf("%w: %v", ErrProviderUnavailable, ctx.Err())
			case <-time.After(backoff):
			}
		}
		var a Answer
		if a, err = p.call(ctx, paymentID, orderID, amountCents); err == nil {
			return a, nil
		}
	}
	return Answer{}, fmt.Errorf("%w: %v", ErrProviderUnavailable, err)
}

func (p *HTTPProvider) call(ctx context.Context, paymentID, orderID string, amountCents int64) (Answer, error) {
	body, _ := json.Marshal(map[string]any{"paymentId": paymentID, "orderId": orderID, "amountCents": amountCents})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return Answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", paymentID)
	resp, err := p.client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Answer{}, fmt.Errorf("gateway answered %s", resp.Status)
	}
	var d struct {
		Approved      bool   `json:"approved"`
		DeclineReason string `json:"declineReason"`
		Ref           string `json:"ref"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return Answer{}, fmt.Errorf("gateway answer: %w", err)
	}
	return Answer{Approved: d.Approved, DeclineReason: d.DeclineReason, Ref: d.Ref}, nil
}
