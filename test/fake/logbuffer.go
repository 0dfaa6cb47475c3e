package fake

import (
	"bytes"
	"sync"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// LogBuffer collects what a test's logger and audit writer write, for
// scans such as "no token in any log line". It is safe for concurrent use.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	// flush, when set, writes what a writer still holds (such as the
	// proxy's pending audit batch) before String reads.
	flush func()
}

// FlushWith makes String call f first, so that it sees lines a batching
// writer has not written yet.
func (b *LogBuffer) FlushWith(f func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flush = f
}

// Logger is a logger at every verbosity (up to 10) that writes one line a
// call into b.
func (b *LogBuffer) Logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.b.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 10})
}

// Write appends p, such as the proxy's audit lines.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	flush := b.flush
	b.mu.Unlock()
	if flush != nil {
		flush()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
