package projections

// The statements QueuePlannedNow queues around its own.
const (
	PlanNow    = planNow
	PlanCached = planCached
)

// Finishing is finishing, for its test.
var Finishing = finishing
