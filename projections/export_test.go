package projections

// The statements QueuePlannedNow queues around its own.
const (
	PlanNow    = planNow
	PlanCached = planCached
)
