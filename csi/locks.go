package csi

import (
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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

// lockCall takes the locks of a call on volume id at target: a call for the
// same volume, or for the same target path under another volume id, is
// answered Aborted. Locking the target as well keeps two volume ids from
// both finding it unmounted and stacking their mounts. The returned func
// releases both.
func (l *volumeLocks) lockCall(id, target string) (func(), error) {
	if !l.tryLock("volume/" + id) {
		return nil, status.Errorf(codes.Aborted, "another call for volume %q is in progress", id)
	}
	if !l.tryLock("target/" + target) {
		l.unlock("volume/" + id)
		return nil, status.Errorf(codes.Aborted, "another call for target_path %q is in progress", target)
	}
	return func() {
		l.unlock("target/" + target)
		l.unlock("volume/" + id)
	}, nil
}
