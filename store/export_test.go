package store

// Waiters exposes to tests how many history requests wait for the ack floor.
func (s *Service) Waiters() int { return s.waiters() }
