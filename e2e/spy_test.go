package e2e

import (
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/orderflow/orderflow/internal/rpc"
)

// requestSpy sees the requests made to some subjects: over NATS, by subscriptions of its own
// (after a flush, every request the server routed before it is in their queues, with no handler
// to lag behind), and in the platform's process (rpc.WatchLocal: a call between targets of one
// process never reaches NATS).
type requestSpy struct {
	nc       *nats.Conn
	subs     []*nats.Subscription
	mu       sync.Mutex
	local    []*nats.Msg
	subjects map[string]bool
	stop     func()
}

func spyOn(t *testing.T, nc *nats.Conn, subjects ...string) *requestSpy {
	t.Helper()
	s := &requestSpy{nc: nc, subjects: map[string]bool{}}
	for _, subject := range subjects {
		s.subjects[subject] = true
		sub, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		s.subs = append(s.subs, sub)
	}
	s.stop = rpc.WatchLocal(func(subject string, data []byte) {
		if s.subjects[subject] {
			s.mu.Lock()
			s.local = append(s.local, &nats.Msg{Subject: subject, Data: append([]byte(nil), data...)})
			s.mu.Unlock()
		}
	})
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// taken stops the spy and answers the requests it saw.
func (s *requestSpy) taken(t *testing.T) []*nats.Msg {
	t.Helper()
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	s.stop()
	var seen []*nats.Msg
	for _, sub := range s.subs {
		for {
			m, err := sub.NextMsg(0)
			if err != nil {
				break
			}
			seen = append(seen, m)
		}
		_ = sub.Unsubscribe()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append(seen, s.local...)
}
