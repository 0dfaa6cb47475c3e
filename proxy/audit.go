package proxy

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// maxAuditPending bounds the audit bytes waiting for a write; a request
// that would add more waits for the write in progress, so lines are never
// dropped.
const maxAuditPending = 1 << 20

// AuditBatchWindow is how long an audit line may wait to be written. The
// first line after a quiet window is written at once; the lines that follow
// within the window go out together in one write at its end. A crash
// therefore loses at most the lines of the last window; Server.Shutdown
// writes everything pending.
const AuditBatchWindow = 5 * time.Millisecond

// auditFlushBytes is the batch size written at once, before the window
// ends.
const auditFlushBytes = 64 << 10

// auditLog writes one JSON line per request into a batchWriter. The line is
// what log/slog's JSON handler would write for the same attributes
// (audit_test.go checks that byte for byte), built by hand because it is
// written for every request.
type auditLog struct {
	out *batchWriter
	// lines recycles the buffers lines are built in.
	lines sync.Pool
}

func newAuditLog(w io.Writer) *auditLog {
	if w == nil {
		return nil
	}
	return &auditLog{out: newBatchWriter(w, AuditBatchWindow)}
}

// write logs e, taken d, with in request and out response body bytes.
func (a *auditLog) write(e *entry, d time.Duration, in, out int64) {
	if a == nil {
		return
	}
	bp, _ := a.lines.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 512)
		bp = &b
	}
	line := appendAuditLine((*bp)[:0], time.Now(), e, d, in, out)
	a.out.add(line)
	*bp = line
	if cap(line) <= 4<<10 {
		a.lines.Put(bp)
	}
}

// flush writes every pending line before it returns.
func (a *auditLog) flush() {
	if a != nil {
		a.out.sync()
	}
}

// appendAuditLine appends the audit line of e, logged at now.
func appendAuditLine(b []byte, now time.Time, e *entry, d time.Duration, in, out int64) []byte {
	b = append(b, `{"time":"`...)
	b = now.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","user":`...)
	b = appendJSONString(b, e.user)
	b = append(b, `,"connector":`...)
	b = appendJSONString(b, e.connector)
	b = append(b, `,"mode":`...)
	b = appendJSONString(b, e.mode)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, e.host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, e.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, out, 10)
	b = append(b, `,"request_bytes":`...)
	b = strconv.AppendInt(b, in, 10)
	b = append(b, `,"duration_ms":`...)
	// A whole number of microseconds in milliseconds: never in the range
	// where encoding/json switches to exponent form.
	b = strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"injected":`...)
	b = strconv.AppendBool(b, e.injected)
	if e.binding != "" {
		b = append(b, `,"binding_refused":`...)
		b = appendJSONString(b, e.binding)
	}
	if e.err != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, e.err.Error())
	}
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string the way log/slog does:
// quote, backslash and control characters escaped, invalid UTF-8 replaced
// by \ufffd, U+2028 and U+2029 escaped, everything else as it is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// batchWriter collects lines and writes them to w in batches. A line that
// arrives after a quiet window is written at once by the goroutine that
// adds it; a line that arrives within the window after a write waits for
// the window's end (a timer), or for a batch of auditFlushBytes, so that
// under load one write carries many lines. Writes happen outside the lock
// the adders take. The timer runs only while lines arrive; there is no
// goroutine to start or stop.
type batchWriter struct {
	w      io.Writer
	window time.Duration

	mu      sync.Mutex
	drained *sync.Cond
	pending []byte
	spare   []byte
	// flushing is set while a write is in progress.
	flushing bool
	// cooling is set from a write until the window after it ends; lines
	// added meanwhile wait for the timer.
	cooling bool
	timer   *time.Timer
}

func newBatchWriter(w io.Writer, window time.Duration) *batchWriter {
	b := &batchWriter{w: w, window: window}
	b.drained = sync.NewCond(&b.mu)
	b.timer = time.AfterFunc(time.Hour, b.windowEnd)
	b.timer.Stop()
	return b
}

// Write adds p as it is (whole lines), like add.
func (b *batchWriter) Write(p []byte) (int, error) {
	b.add(p)
	return len(p), nil
}

// add appends line to the pending batch, waiting while the batch is full,
// and writes the batch itself when no window is running or the batch is
// large.
func (b *batchWriter) add(line []byte) {
	b.mu.Lock()
	for len(b.pending) >= maxAuditPending && b.flushing {
		b.drained.Wait()
	}
	b.pending = append(b.pending, line...)
	if b.flushing || (b.cooling && len(b.pending) < auditFlushBytes) {
		b.mu.Unlock()
		return
	}
	b.writePending()
	b.mu.Unlock()
}

// pendingBytes is the size of the batch waiting to be written.
func (b *batchWriter) pendingBytes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// windowEnd writes what arrived during the window, which starts the next
// one; a window with nothing to write ends the cooling.
func (b *batchWriter) windowEnd() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.flushing {
		return // the writer in progress restarts the window
	}
	if len(b.pending) == 0 {
		b.cooling = false
		return
	}
	b.writePending()
}

// writePending writes the pending batch with b.mu held on entry and on
// return (released during the write), then starts a window.
func (b *batchWriter) writePending() {
	b.flushing = true
	batch := b.pending
	b.pending = b.spare[:0]
	b.mu.Unlock()
	_, _ = b.w.Write(batch) // a failing audit sink must not fail requests
	b.mu.Lock()
	if cap(batch) <= 2*maxAuditPending {
		b.spare = batch[:0]
	}
	b.flushing = false
	b.cooling = true
	b.timer.Reset(b.window)
	b.drained.Broadcast()
}

// sync writes everything pending before it returns.
func (b *batchWriter) sync() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.flushing || len(b.pending) > 0 {
		if b.flushing {
			b.drained.Wait()
			continue
		}
		b.writePending()
	}
}
