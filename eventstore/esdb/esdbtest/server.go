// Package esdbtest is a test double of the EventStoreDB server protocol: an in-process gRPC
// server that implements the Streams service from the generated interfaces shipped inside
// EventStore-Client-Go/v4, so that tests exercise the real client's wire path (options,
// protobuf mapping, error trailers, subscriptions) on a loopback port.
//
// It is a protocol double, not an event store: it keeps everything in memory, knows one node,
// no ACLs, no projections but the $bc-<correlation id> streams of $by_correlation_id (computed on
// read), no persistent subscriptions, and is never selectable as a product
// store. What it implements follows what the v4.2.0 client expects:
//   - ServerFeatures is not registered: the client gets Unimplemented and assumes defaults;
//   - every RecordedEvent carries metadata "type", "content-type" and "created" (100-ns ticks
//     since the Unix epoch; without it the client calls log.Fatalf);
//   - a plain read answers only Event or StreamNotFound messages; a subscription answers
//     Confirmation first, then Event, Checkpoint and CaughtUp; subscription starts are exclusive,
//     read starts inclusive;
//   - keepalive pings every 10 s are permitted (grpc-go's default policy would drop them);
//   - delete and tombstone answer with a position; a tombstoned stream is FailedPrecondition
//     with trailers "exception: stream-deleted" and "stream-name";
//   - like EventStoreDB, $all holds system events ($-prefixed streams and types) that clients
//     must filter out, and appending the same event ids at the same expected revision is an
//     idempotent success answered with the first write's result.
package esdbtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type record struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	typ         string
	contentType string
	data        []byte
	custom      []byte
	created     int64 // 100-ns ticks since the Unix epoch
	pos         uint64
}

type streamState struct {
	events     []int // indexes into Server.log
	deleted    bool  // soft-deleted: reads say not found, an append recreates it
	tombstoned bool  // hard-deleted: every operation fails with stream-deleted
	// truncate: after a soft delete the stream's revisions continue from here
	truncate uint64
}

// Server is a running double. Safe for concurrent use.
type Server struct {
	api.UnimplementedStreamsServer

	mu      sync.Mutex
	log     []record
	streams map[string]*streamState
	next    uint64
	changed chan struct{} // closed and replaced on every write

	subsMu sync.Mutex
	subs   map[int]context.CancelFunc
	subID  int

	srv *grpc.Server
	lis net.Listener
	tls bool
}

// Start serves a new, empty double on a loopback port (plus a few system events, as a fresh
// EventStoreDB has) until Stop.
func Start() (*Server, error) { return start(nil) }

// New starts a double for tb, stopped when it ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	srv, err := Start()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Stop)
	return srv
}

// StartTLS is Start over TLS with the server certificate certFile and its key (PEM): URL then says
// tls=true, and a client adds the authority it trusts (tlsCAFile=…).
func StartTLS(certFile, keyFile string) (*Server, error) {
	creds, err := credentials.NewServerTLSFromFile(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return start(creds)
}

func start(creds credentials.TransportCredentials) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{streams: map[string]*streamState{}, next: 1024, changed: make(chan struct{}), subs: map[int]context.CancelFunc{}, lis: lis, tls: creds != nil}
	opts := []grpc.ServerOption{grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true})}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
	}
	s.srv = grpc.NewServer(opts...)
	api.RegisterStreamsServer(s.srv, s)
	s.mu.Lock()
	s.write("$settings", "$settings", []byte(`{"$userStreamAcl":{}}`))
	s.write("$stats-127.0.0.1:2113", "$statsCollected", []byte(`{}`))
	s.mu.Unlock()
	go func() { _ = s.srv.Serve(lis) }()
	return s, nil
}

// URL is the connection string for the client: esdb://127.0.0.1:port?tls=false, or over TLS
// (StartTLS) esdb://localhost:port?tls=true.
func (s *Server) URL() string {
	if s.tls {
		return fmt.Sprintf("esdb://localhost:%d?tls=true", s.lis.Addr().(*net.TCPAddr).Port)
	}
	return "esdb://" + s.lis.Addr().String() + "?tls=false"
}

// Stop ends every call and closes the listener.
func (s *Server) Stop() { s.srv.Stop() }

// DropSubscriptions ends every open subscription with an error, as a server restart or a
// network failure would: clients must re-subscribe from where they were.
func (s *Server) DropSubscriptions() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for id, cancel := range s.subs {
		cancel()
		delete(s.subs, id)
	}
}

// Count returns how many events the double holds in streams starting with prefix.
func (s *Server) Count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.log {
		if strings.HasPrefix(r.stream, prefix) {
			n++
		}
	}
	return n
}

// AppendSystemEvent writes an event to a $-prefixed stream, as the server's own subsystems do.
func (s *Server) AppendSystemEvent(stream, typ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.write(stream, typ, []byte(`{}`))
}

// write appends one system record; s.mu is held.
func (s *Server) write(stream, typ string, data []byte) {
	st := s.stream(stream)
	s.appendRecord(st, record{id: uuid.New(), stream: stream, typ: typ, contentType: "application/json", data: data})
}

func (s *Server) stream(name string) *streamState {
	st := s.streams[name]
	if st == nil {
		st = &streamState{}
		s.streams[name] = st
	}
	return st
}

// appendRecord stores r at the end of st and $all; s.mu is held.
func (s *Server) appendRecord(st *streamState, r record) record {
	r.revision = st.truncate + uint64(len(st.events))
	r.pos = s.next
	s.next += 128 + uint64(len(r.data)) // positions are log offsets: increasing, not dense
	r.created = time.Now().UnixNano() / 100
	s.log = append(s.log, r)
	st.events = append(st.events, len(s.log)-1)
	return r
}

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// revisionOf is the stream's current revision and whether it has one.
func (st *streamState) revisionOf(log []record) (uint64, bool) {
	if st == nil || st.deleted || len(st.events) == 0 {
		return 0, false
	}
	return log[st.events[len(st.events)-1]].revision, true
}

func streamDeleted(name string) error {
	st := status.New(codes.FailedPrecondition, "stream deleted")
	return &trailerError{st: st, trailer: metadata.Pairs("exception", "stream-deleted", "stream-name", name)}
}

// trailerError carries the trailers EventStoreDB sets on an error.
type trailerError struct {
	st      *status.Status
	trailer metadata.MD
}

func (e *trailerError) Error() string              { return e.st.Message() }
func (e *trailerError) GRPCStatus() *status.Status { return e.st }

func fail(ctx context.Context, err error) error {
	if te, ok := err.(*trailerError); ok {
		_ = grpc.SetTrailer(ctx, te.trailer)
		return te.st.Err()
	}
	return err
}

// Append implements the Streams service: options first, then the proposed messages.
func (s *Server) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append: options must come first")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	var proposed []*api.AppendReq_ProposedMessage
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "append: options sent twice")
		}
		proposed = append(proposed, m)
	}
	resp, err := s.append(name, opts, proposed)
	if err != nil {
		return fail(stream.Context(), err)
	}
	return stream.SendAndClose(resp)
}

func (s *Server) append(name string, opts *api.AppendReq_Options, proposed []*api.AppendReq_ProposedMessage) (*api.AppendResp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return nil, streamDeleted(name)
	}
	current, exists := st.revisionOf(s.log)
	ids := make([]uuid.UUID, len(proposed))
	for i, m := range proposed {
		id, err := protoUUID(m.GetId())
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		ids[i] = id
	}
	ok := true
	var expected *uint64
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		ok, expected = exists && current == e.Revision, &e.Revision
	case *api.AppendReq_Options_NoStream:
		ok = !exists
		none := ^uint64(0)
		expected = &none
	case *api.AppendReq_Options_StreamExists:
		ok = exists
	}
	if res := s.retried(st, ids, expected); res != nil {
		return res, nil
	}
	if !ok {
		return wrongVersion(opts, current, exists), nil
	}
	if len(proposed) == 0 {
		return success(current, exists, 0), nil
	}
	if st == nil {
		st = s.stream(name)
	}
	if st.deleted {
		st.deleted, st.truncate, st.events = false, current+1, nil
	}
	var last record
	for i, m := range proposed {
		last = s.appendRecord(st, record{
			id: ids[i], stream: name, typ: m.GetMetadata()["type"], contentType: m.GetMetadata()["content-type"],
			data: m.GetData(), custom: m.GetCustomMetadata(),
		})
	}
	s.notify()
	return success(last.revision, true, last.pos), nil
}

// retried answers an append whose ids the stream already holds, in order, right after the
// expected revision (or anywhere, for Any and StreamExists, as the server's bounded cache would),
// with the original write's result.
func (s *Server) retried(st *streamState, ids []uuid.UUID, expected *uint64) *api.AppendResp {
	if st == nil || len(ids) == 0 {
		return nil
	}
	for start := 0; start+len(ids) <= len(st.events); start++ {
		rec := s.log[st.events[start]]
		if rec.id != ids[0] {
			continue
		}
		if expected != nil && rec.revision != *expected+1 {
			return nil
		}
		for i := range ids {
			if s.log[st.events[start+i]].id != ids[i] {
				return nil
			}
		}
		last := s.log[st.events[start+len(ids)-1]]
		return success(last.revision, true, last.pos)
	}
	return nil
}

func success(revision uint64, exists bool, pos uint64) *api.AppendResp {
	ok := &api.AppendResp_Success{}
	if exists {
		ok.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: revision}
	} else {
		ok.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
	}
	if pos > 0 {
		ok.PositionOption = &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{CommitPosition: pos, PreparePosition: pos}}
	} else {
		ok.PositionOption = &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: ok}}
}

func wrongVersion(opts *api.AppendReq_Options, current uint64, exists bool) *api.AppendResp {
	w := &api.AppendResp_WrongExpectedVersion{}
	if exists {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: current}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	}
	switch e := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: e.Revision}
	case *api.AppendReq_Options_NoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case *api.AppendReq_Options_StreamExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

// Delete implements the Streams service: a soft delete.
func (s *Server) Delete(ctx context.Context, req *api.DeleteReq) (*api.DeleteResp, error) {
	name := string(req.GetOptions().GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		return nil, fail(ctx, streamDeleted(name))
	}
	if st != nil {
		current, _ := st.revisionOf(s.log)
		st.deleted, st.truncate = true, current+1
	}
	s.write("$$"+name, "$metadata", []byte(`{"$tb":`+strconv.Itoa(len(s.log))+`}`))
	pos := s.log[len(s.log)-1].pos
	s.notify()
	return &api.DeleteResp{PositionOption: &api.DeleteResp_Position_{Position: &api.DeleteResp_Position{CommitPosition: pos, PreparePosition: pos}}}, nil
}

// Tombstone implements the Streams service: a hard delete; the stream can never be written again.
func (s *Server) Tombstone(ctx context.Context, req *api.TombstoneReq) (*api.TombstoneResp, error) {
	name := string(req.GetOptions().GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stream(name)
	if st.tombstoned {
		return nil, fail(ctx, streamDeleted(name))
	}
	st.tombstoned = true
	s.write("$$"+name, "$streamDeleted", []byte(`{}`))
	pos := s.log[len(s.log)-1].pos
	s.notify()
	return &api.TombstoneResp{PositionOption: &api.TombstoneResp_Position_{Position: &api.TombstoneResp_Position{CommitPosition: pos, PreparePosition: pos}}}, nil
}

// Read implements the Streams service: stream reads, $all reads and $all subscriptions.
func (s *Server) Read(req *api.ReadReq, out api.Streams_ReadServer) error {
	opts := req.GetOptions()
	backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	if sub := opts.GetSubscription(); sub != nil {
		all := opts.GetAll()
		if all == nil {
			return status.Error(codes.Unimplemented, "the double subscribes to $all only")
		}
		return s.subscribe(opts, all, out)
	}
	count := opts.GetCount()
	if so := opts.GetStream(); so != nil {
		if id, ok := strings.CutPrefix(string(so.GetStreamIdentifier().GetStreamName()), "$bc-"); ok {
			return s.readCorrelation(id, opts.GetResolveLinks(), count, out)
		}
		return s.readStream(so, backwards, count, out)
	}
	return s.readAll(opts.GetAll(), backwards, count, out)
}

func (s *Server) readStream(so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, out api.Streams_ReadServer) error {
	name := string(so.GetStreamIdentifier().GetStreamName())
	s.mu.Lock()
	st := s.streams[name]
	if st != nil && st.tombstoned {
		s.mu.Unlock()
		return fail(out.Context(), streamDeleted(name))
	}
	if _, exists := st.revisionOf(s.log); !exists {
		s.mu.Unlock()
		return out.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{StreamIdentifier: so.GetStreamIdentifier()}}})
	}
	var recs []record
	n := len(st.events)
	start := 0
	switch r := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		start = int(r.Revision - st.truncate)
		if r.Revision < st.truncate {
			start = 0
		}
	case *api.ReadReq_Options_StreamOptions_End:
		start = n - 1
		if !backwards {
			start = n
		}
	}
	if backwards {
		for i := min(start, n-1); i >= 0 && uint64(len(recs)) < count; i-- {
			recs = append(recs, s.log[st.events[i]])
		}
	} else {
		for i := start; i < n && uint64(len(recs)) < count; i++ {
			recs = append(recs, s.log[st.events[i]])
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := out.Send(eventMessage(r)); err != nil {
			return err
		}
	}
	return nil
}

// readCorrelation serves $bc-<id> as the $by_correlation_id system projection keeps it: a link
// ($>) to every event whose metadata's $correlationId is id, in log order; resolved, each link
// comes with the event it points to.
func (s *Server) readCorrelation(id string, resolve bool, count uint64, out api.Streams_ReadServer) error {
	s.mu.Lock()
	var originals []record
	for _, r := range s.log {
		var meta struct {
			Correlation string `json:"$correlationId"`
		}
		if len(r.custom) > 0 && json.Unmarshal(r.custom, &meta) == nil && meta.Correlation == id && uint64(len(originals)) < count {
			originals = append(originals, r)
		}
	}
	s.mu.Unlock()
	stream := "$bc-" + id
	if len(originals) == 0 {
		return out.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(stream)}}}})
	}
	for i, r := range originals {
		link := record{id: uuid.NewSHA1(uuid.NameSpaceOID, []byte(stream+strconv.Itoa(i))), stream: stream, revision: uint64(i), typ: "$>",
			contentType: "application/octet-stream", data: []byte(strconv.FormatUint(r.revision, 10) + "@" + r.stream), created: r.created, pos: r.pos}
		msg := eventMessage(link)
		if resolve {
			resolved := eventMessage(r)
			msg.GetEvent().Link = msg.GetEvent().Event
			msg.GetEvent().Event = resolved.GetEvent().Event
		}
		if err := out.Send(msg); err != nil {
			return err
		}
	}
	return nil
}

// index of the first record at or after pos; s.mu is held.
func (s *Server) index(pos uint64) int {
	lo, hi := 0, len(s.log)
	for lo < hi {
		m := (lo + hi) / 2
		if s.log[m].pos < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (s *Server) readAll(all *api.ReadReq_Options_AllOptions, backwards bool, count uint64, out api.Streams_ReadServer) error {
	s.mu.Lock()
	var start int
	switch a := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		start = s.index(a.Position.GetCommitPosition()) // inclusive, as EventStoreDB
		if backwards {
			if start < len(s.log) && s.log[start].pos == a.Position.GetCommitPosition() {
				start++ // backwards reads start before the position
			}
			start--
		}
	case *api.ReadReq_Options_AllOptions_End:
		start = len(s.log)
		if backwards {
			start = len(s.log) - 1
		}
	default:
		if backwards {
			start = -1
		}
	}
	var recs []record
	if backwards {
		for i := min(start, len(s.log)-1); i >= 0 && uint64(len(recs)) < count; i-- {
			recs = append(recs, s.log[i])
		}
	} else {
		for i := start; i < len(s.log) && uint64(len(recs)) < count; i++ {
			recs = append(recs, s.log[i])
		}
	}
	s.mu.Unlock()
	for _, r := range recs {
		if err := out.Send(eventMessage(r)); err != nil {
			return err
		}
	}
	return nil
}

// filter is a subscription's server-side filter.
type filter struct {
	onType   bool
	prefixes []string
	regex    *regexp.Regexp
	interval int // scanned events between checkpoints
}

func newFilter(f *api.ReadReq_Options_FilterOptions) (*filter, error) {
	if f == nil {
		return nil, nil
	}
	out := &filter{interval: 32}
	var expr *api.ReadReq_Options_FilterOptions_Expression
	switch x := f.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_EventType:
		out.onType, expr = true, x.EventType
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		expr = x.StreamIdentifier
	}
	out.prefixes = expr.GetPrefix()
	if re := expr.GetRegex(); re != "" {
		r, err := regexp.Compile(re)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "filter regex: %v", err)
		}
		out.regex = r
	}
	if m := f.GetMax(); m > 0 {
		out.interval = int(m)
	}
	if k := f.GetCheckpointIntervalMultiplier(); k > 0 {
		out.interval *= int(k)
	}
	return out, nil
}

func (f *filter) match(r record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.onType {
		subject = r.typ
	}
	if f.regex != nil && !f.regex.MatchString(subject) {
		return false
	}
	if len(f.prefixes) == 0 {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}

func (s *Server) subscribe(opts *api.ReadReq_Options, all *api.ReadReq_Options_AllOptions, out api.Streams_ReadServer) error {
	f, err := newFilter(opts.GetFilter())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(out.Context())
	defer cancel()
	s.subsMu.Lock()
	s.subID++
	id := s.subID
	s.subs[id] = cancel
	s.subsMu.Unlock()
	defer func() {
		s.subsMu.Lock()
		delete(s.subs, id)
		s.subsMu.Unlock()
	}()
	if err := out.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{SubscriptionId: fmt.Sprintf("sub-%d", id)}}}); err != nil {
		return err
	}
	s.mu.Lock()
	next := 0
	switch a := all.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Position:
		next = s.index(a.Position.GetCommitPosition())
		if next < len(s.log) && s.log[next].pos == a.Position.GetCommitPosition() {
			next++ // exclusive
		}
	case *api.ReadReq_Options_AllOptions_End:
		next = len(s.log)
	}
	s.mu.Unlock()
	caughtUp := false
	scanned := 0
	for {
		s.mu.Lock()
		batch := append([]record(nil), s.log[next:min(len(s.log), next+256)]...)
		changed := s.changed
		s.mu.Unlock()
		next += len(batch)
		for _, r := range batch {
			scanned++
			if f.match(r) {
				if err := out.Send(eventMessage(r)); err != nil {
					return err
				}
			} else if f != nil && scanned%f.interval == 0 {
				if err := out.Send(checkpoint(r.pos)); err != nil {
					return err
				}
			}
		}
		if len(batch) == 0 {
			if !caughtUp {
				caughtUp = true
				if f != nil && next > 0 {
					s.mu.Lock()
					last := s.log[next-1].pos
					s.mu.Unlock()
					if err := out.Send(checkpoint(last)); err != nil {
						return err
					}
				}
				if err := out.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
					return err
				}
			}
			select {
			case <-ctx.Done():
				if out.Context().Err() != nil {
					return out.Context().Err()
				}
				return status.Error(codes.Unavailable, "subscription dropped by the server")
			case <-changed:
			}
		}
	}
}

func checkpoint(pos uint64) *api.ReadResp {
	return &api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{CommitPosition: pos, PreparePosition: pos}}}
}

func eventMessage(r record) *api.ReadResp {
	most, least := esdb.UUIDAsInt64(r.id)
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{MostSignificantBits: most, LeastSignificantBits: least}}},
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.pos,
			CommitPosition:   r.pos,
			Metadata:         map[string]string{"type": r.typ, "content-type": r.contentType, "created": strconv.FormatInt(r.created, 10)},
			CustomMetadata:   r.custom,
			Data:             r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.pos},
	}}}
}

func protoUUID(u *shared.UUID) (uuid.UUID, error) {
	if st := u.GetStructured(); st != nil {
		return esdb.ParseUUIDFromInt64(st.GetMostSignificantBits(), st.GetLeastSignificantBits())
	}
	return uuid.Parse(u.GetString_())
}
