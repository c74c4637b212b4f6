package postgres

// QueuedAppends is how many appends wait for a group statement.
func (s *Store) QueuedAppends() int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.pending)
}
