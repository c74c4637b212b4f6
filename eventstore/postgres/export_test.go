package postgres

// QueuedAppends is how many appends wait for a group statement.
func (s *Store) QueuedAppends() int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.pending)
}

// StreamStatements are the store's statements that find a stream's events by its id, by name.
func (s *Store) StreamStatements() map[string]string {
	return map[string]string{
		"appendExact": s.sql.appendExact, "appendExactOne": s.sql.appendExactOne, "appendHead": s.sql.appendHead,
		"appendMany": s.sql.appendMany, "findIDs": s.sql.findIDs, "head": s.sql.head,
		"readFwd": s.sql.readFwd, "readBack": s.sql.readBack,
	}
}

// ReadAllStatements are the store's two reads of $all (past the cluster's oldest transaction, and
// past the appends in flight) and the settings they are run with.
func (s *Store) ReadAllStatements() (oldest, fenced, settings string) {
	return s.sql.readAllOldest, s.sql.readAll, s.sql.genericRead
}

// PlanEachTime makes the store run the group append and the reads of $all as PostgreSQL's plan
// cache decides (as it did before generic.go), for comparison.
func (s *Store) PlanEachTime() { s.sql.generic, s.sql.genericRead = "", "" }
