package proxy

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// maxAuditPending bounds the audit bytes waiting for a write; a request
// that would add more waits for the write in progress, so lines are never
// dropped.
const maxAuditPending = 1 << 20

// auditLog writes one JSON line per request (log/slog's JSON handler) into
// a batch that the request goroutines write out themselves: the first to
// find no write in progress writes everything pending, the others only
// append. Under load one write carries many lines; when idle each line is
// written at once. There is no background goroutine to start or stop.
type auditLog struct {
	logger *slog.Logger
	out    *batchWriter
}

func newAuditLog(w io.Writer) *auditLog {
	if w == nil {
		return nil
	}
	b := newBatchWriter(w)
	return &auditLog{out: b, logger: slog.New(slog.NewJSONHandler(b, nil))}
}

// write logs e, taken d, with in request and out response body bytes.
func (a *auditLog) write(e *entry, d time.Duration, in, out int64) {
	if a == nil {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs,
		slog.String("user", e.user),
		slog.String("connector", e.connector),
		slog.String("mode", e.mode),
		slog.String("method", e.method),
		slog.String("host", e.host),
		slog.String("path", e.path),
		slog.Int("status", e.status),
		slog.Int64("bytes", out),
		slog.Int64("request_bytes", in),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.Bool("injected", e.injected),
	)
	if e.binding != "" {
		attrs = append(attrs, slog.String("binding_refused", e.binding))
	}
	if e.err != nil {
		attrs = append(attrs, slog.String("error", e.err.Error()))
	}
	a.logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
	a.out.flush()
}

// batchWriter collects lines written to it and writes them to w in
// batches when flush is called. Write only appends, so it is cheap to call
// under a handler's lock; flush writes without holding any lock a writer
// needs.
type batchWriter struct {
	w io.Writer

	mu       sync.Mutex
	drained  *sync.Cond
	pending  []byte
	spare    []byte
	flushing bool
}

func newBatchWriter(w io.Writer) *batchWriter {
	b := &batchWriter{w: w}
	b.drained = sync.NewCond(&b.mu)
	return b
}

// Write appends p to the pending batch, waiting while the batch is full.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.pending) >= maxAuditPending && b.flushing {
		b.drained.Wait()
	}
	b.pending = append(b.pending, p...)
	return len(p), nil
}

// flush writes the pending batch unless another goroutine is writing; that
// one then writes what was added meanwhile before it returns.
func (b *batchWriter) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flushing {
		return
	}
	b.flushing = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = b.spare[:0]
		b.mu.Unlock()
		_, _ = b.w.Write(batch) // a failing audit sink must not fail requests
		b.mu.Lock()
		if cap(batch) <= 2*maxAuditPending {
			b.spare = batch[:0]
		}
		b.drained.Broadcast()
	}
	b.flushing = false
}
