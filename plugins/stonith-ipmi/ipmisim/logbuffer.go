package ipmisim

import (
	"bytes"
	"sync"
)

// LogBuffer collects a fencing driver's log lines in a test; the logger
// may write from more than one goroutine. The tests read it to check that
// no password ever reaches a log.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *LogBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *LogBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
