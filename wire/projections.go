package wire

import "time"

// The projections service: operators' view of the read models and their operations, served by
// the projector target (and used by the gateway's admin fields).
const (
	ServiceProjections = "projections"
)

var (
	EndpointProjectionsList   = endpoint[struct{}, []ProjectionStatus](ServiceProjections, "projections.list")
	EndpointProjectionPause   = endpoint[ProjectionName, ProjectionStatus](ServiceProjections, "projections.pause")
	EndpointProjectionResume  = endpoint[ProjectionName, ProjectionStatus](ServiceProjections, "projections.resume")
	EndpointProjectionParked  = endpoint[ProjectionName, []ParkedEvent](ServiceProjections, "projections.parked")
	EndpointProjectionReplay  = endpoint[ProjectionName, ReplayResult](ServiceProjections, "projections.replay_parked")
	EndpointProjectionRebuild = endpoint[ProjectionName, ProjectionStatus](ServiceProjections, "projections.rebuild") // once the rebuild runs
)

// ProjectionName names one read model's projection.
type ProjectionName struct {
	Name string `json:"name"`
}

// ProjectionStatus is a read model's projection as operators see it.
type ProjectionStatus struct {
	Name     string `json:"name"`
	Position string `json:"position"`
	Head     string `json:"head"`
	// LagEvents and LagSeconds: events after Position, and the age of the oldest of them
	// (PostgreSQL event store only; zero on EventStoreDB).
	LagEvents  int64      `json:"lagEvents"`
	LagSeconds float64    `json:"lagSeconds"`
	UpdatedAt  *time.Time `json:"updatedAt,omitempty"`
	Paused     bool       `json:"paused"`
	// Rebuilding: a new version is being built (or an interrupted rebuild left one to resume).
	Rebuilding bool  `json:"rebuilding"`
	Parked     int64 `json:"parked"`
	// Rebuild is the progress of a rebuild started through this service, if any.
	Rebuild *RebuildStatus `json:"rebuild,omitempty"`
	// Partitions are the read model's partitions (Position is the slowest's), and Workers how
	// many workers hold them.
	Partitions []PartitionStatus `json:"partitions"`
	Workers    int64             `json:"workers"`
}

// PartitionStatus is one partition of a read model: where it is, how far behind the head of the
// log (in log positions, PostgreSQL event store only) and which worker holds it ("" for none).
type PartitionStatus struct {
	Partition int64     `json:"partition"`
	Position  string    `json:"position"`
	Lag       int64     `json:"lag"`
	Owner     string    `json:"owner"`
	Epoch     int64     `json:"epoch"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// RebuildStatus is the progress of a rebuild.
type RebuildStatus struct {
	Phase      string    `json:"phase"` // bulk loading, indexing, replaying, swapping, done, failed
	Done       int64     `json:"done"`
	Total      int64     `json:"total"`
	Rate       float64   `json:"rate"`
	ETASeconds float64   `json:"etaSeconds"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
}

// ParkedEvent is an event a projection could not apply.
type ParkedEvent struct {
	EventID  string    `json:"eventId"`
	Stream   string    `json:"stream"`
	Type     string    `json:"type"`
	Position string    `json:"position"`
	Error    string    `json:"error"`
	Attempts int64     `json:"attempts"`
	ParkedAt time.Time `json:"parkedAt"`
}

// ReplayResult says how many parked events applied.
type ReplayResult struct {
	Applied int64 `json:"applied"`
}
