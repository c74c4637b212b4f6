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
