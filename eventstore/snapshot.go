package eventstore

import (
	"context"
	"errors"
)

// ErrSnapshotNotFound: a stream has no snapshot (or the store keeps none).
var ErrSnapshotNotFound = errors.New("snapshot not found")

// Snapshot is a stream's folded state at Revision, in the format of the fold (Version) that made
// it: a reader whose fold has another Version ignores it and reads the stream from its start.
type Snapshot struct {
	Revision int64
	Version  string
	Data     []byte
}

// Snapshots is kept by stores that store snapshots beside their streams (every adapter does).
// Snapshots are a cache of what the events say: losing one costs a longer load, never a wrong
// state, so they are written outside any append and need no transaction with it.
type Snapshots interface {
	// SaveSnapshot keeps s as stream's snapshot unless the one kept has a higher revision.
	SaveSnapshot(ctx context.Context, stream string, s Snapshot) error
	// LoadSnapshot returns stream's latest snapshot. Errors: ErrSnapshotNotFound.
	LoadSnapshot(ctx context.Context, stream string) (Snapshot, error)
}
