package csi

import "sync"

// volumeLocks is a set of per-volume try-locks: a second call for a volume
// that is being worked on is answered Aborted instead of waiting.
type volumeLocks struct {
	mu   sync.Mutex
	held map[string]struct{}
}

func newVolumeLocks() *volumeLocks {
	return &volumeLocks{held: make(map[string]struct{})}
}

// tryLock takes the lock of id and reports whether it was free.
func (l *volumeLocks) tryLock(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.held[id]; busy {
		return false
	}
	l.held[id] = struct{}{}
	return true
}

// unlock releases the lock of id.
func (l *volumeLocks) unlock(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, id)
}
