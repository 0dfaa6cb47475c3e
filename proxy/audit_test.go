package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/connectors-node/connectors-node/kube/ca"
)

// slowSink records each Write and takes a while over it, so that lines
// pile up behind a write in progress.
type slowSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
	fail   bool
}

func (s *slowSink) Write(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.buf.Write(p)
	if s.fail {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestAuditLinesAreWholeAndBatched(t *testing.T) {
	sink := &slowSink{}
	a := newAuditLog(sink)
	const writers, each = 16, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e := &entry{mode: modeReverse, method: "GET", host: "h", status: 200,
					path: fmt.Sprintf("/w%d/%d", w, i), err: errors.New("quote \" and\nnewline")}
				a.write(e, time.Millisecond, 1, 2)
			}
		})
	}
	wg.Wait()
	a.flush() // as Server.Shutdown does

	seen := map[string]bool{}
	sc := bufio.NewScanner(&sink.buf)
	for sc.Scan() {
		var rec struct {
			Msg, Path, Error string
			Status           int
			DurationMS       float64 `json:"duration_ms"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("line is not one JSON object: %v: %q", err, sc.Text())
		}
		if rec.Msg != "request" || rec.Status != 200 || rec.DurationMS != 1 || rec.Error != "quote \" and\nnewline" {
			t.Fatalf("line lost fields: %q", sc.Text())
		}
		if seen[rec.Path] {
			t.Fatalf("line written twice: %s", rec.Path)
		}
		seen[rec.Path] = true
	}
	if len(seen) != writers*each {
		t.Fatalf("%d lines written, want %d", len(seen), writers*each)
	}
	// Every line reached the sink once, and lines written while a write was
	// in progress went out together.
	if sink.writes >= writers*each {
		t.Errorf("%d writes for %d lines: nothing was batched", sink.writes, writers*each)
	}
}

func TestAuditSinkFailureDoesNotBlock(t *testing.T) {
	sink := &slowSink{fail: true}
	a := newAuditLog(sink)
	for range 3 {
		a.write(&entry{mode: modeReverse, status: 200}, 0, 0, 0)
	}
	a.flush()
	sink.mu.Lock()
	lines := bytes.Count(sink.buf.Bytes(), []byte("\n"))
	sink.mu.Unlock()
	if lines != 3 {
		t.Errorf("%d lines reached the failing sink, want 3", lines)
	}
	var none *auditLog // no AuditLog configured
	none.write(&entry{}, 0, 0, 0)
}

func TestBatchWriterBoundsPendingBytes(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	blocking := writerFunc(func(p []byte) (int, error) {
		once.Do(func() { close(entered); <-release })
		return len(p), nil
	})
	b := newBatchWriter(blocking, AuditBatchWindow)
	go func() { _, _ = b.Write([]byte("first\n")) }() // written at once: blocks inside the sink
	<-entered

	line := bytes.Repeat([]byte("x"), 64<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 * maxAuditPending / len(line) {
			_, _ = b.Write(line)
		}
	}()
	select {
	case <-done:
		t.Fatal("pending bytes grew past the bound while a write was stuck")
	case <-time.After(100 * time.Millisecond):
	}
	b.mu.Lock()
	pending := len(b.pending)
	b.mu.Unlock()
	if pending > maxAuditPending+len(line) {
		t.Errorf("%d bytes pending, bound %d", pending, maxAuditPending)
	}
	close(release)
	<-done
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// countingSink counts writes and keeps what they carried.
type countingSink struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (s *countingSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.buf.Write(p)
}

func (s *countingSink) state() (writes, lines int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, bytes.Count(s.buf.Bytes(), []byte("\n"))
}

// With a fast sink, 50 request goroutines share writes: at most one write
// per batch window (plus one per full batch), far below one per line.
func TestAuditBatchesUnderLoadWithAFastSink(t *testing.T) {
	sink := &countingSink{}
	a := newAuditLog(sink)
	const writers, each = 50, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				a.write(&entry{mode: modeReverse, method: "GET", status: 200, path: fmt.Sprintf("/w%d/%d", w, i)}, time.Millisecond, 0, 2)
			}
		})
	}
	wg.Wait()
	a.flush()
	writes, lines := sink.state()
	if lines != writers*each {
		t.Fatalf("%d lines written, want %d", lines, writers*each)
	}
	if writes*5 > lines {
		t.Errorf("%d writes for %d lines, want at most 0.2 writes per line", writes, lines)
	}
}

// A line after a quiet window is written before write returns; a line
// within the window is written when the window ends, with nothing else
// happening: a crash loses at most one window's lines.
func TestAuditWindowWritesWithoutFurtherLines(t *testing.T) {
	sink := &countingSink{}
	a := newAuditLog(sink)
	a.write(&entry{mode: modeReverse, status: 200, path: "/first"}, 0, 0, 0)
	if writes, lines := sink.state(); writes != 1 || lines != 1 {
		t.Fatalf("after the first line: %d writes, %d lines; want it written at once", writes, lines)
	}
	a.write(&entry{mode: modeReverse, status: 200, path: "/second"}, 0, 0, 0)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, lines := sink.state(); lines == 2 {
			break
		}
	}
	if _, lines := sink.state(); lines != 2 {
		t.Fatalf("the line within the window was never written: %d lines", lines)
	}
	// After a quiet window the next line goes out at once again.
	for deadline := time.Now().Add(10 * time.Second); a.out.isCooling() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	w0, _ := sink.state()
	a.write(&entry{mode: modeReverse, status: 200, path: "/third"}, 0, 0, 0)
	if w, lines := sink.state(); w != w0+1 || lines != 3 {
		t.Errorf("after a quiet window: %d writes (was %d), %d lines; want the line written at once", w, w0, lines)
	}
}

// Server.Shutdown writes the lines still waiting in the batch window.
func TestShutdownWritesPendingAuditLines(t *testing.T) {
	sink := &countingSink{}
	authority, err := ca.NewCA("t", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{Objects: newFakeObjects(), Auth: newFakeAuth(), CA: authority, AuditLog: sink, AllowLoopback: true,
		UpstreamFastPath: testFastPath()})
	if err != nil {
		t.Fatal(err)
	}
	s := p.NewServer(ServerOptions{})
	p.audit.write(&entry{mode: modeReverse, status: 200}, 0, 0, 0) // starts a window
	p.audit.write(&entry{mode: modeReverse, status: 200}, 0, 0, 0) // waits in it
	p.audit.write(&entry{mode: modeReverse, status: 200}, 0, 0, 0)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, lines := sink.state(); lines != 3 {
		t.Errorf("%d lines written by Shutdown, want 3", lines)
	}
}

// The hand-built audit line is byte for byte what log/slog's JSON handler
// writes for the same attributes, escaping included.
func TestAuditLineMatchesSlogJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " back \ slash`, "nl\n cr\r tab\t", "\x00\x1f\x7f",
		"bad utf8 \xff\xfe", "line sep \u2028 para \u2029", "<html> & 'x'", "日本語", "\xe2\x80"} {
		checkAuditLineMatchesSlog(t, s, 123456*time.Microsecond)
	}
}

func FuzzAuditLineMatchesSlogJSON(f *testing.F) {
	f.Add("a\"b\\c\n\xff\u2028", int64(1500))
	f.Fuzz(func(t *testing.T, s string, us int64) {
		checkAuditLineMatchesSlog(t, s, time.Duration(us)*time.Microsecond)
	})
}

func checkAuditLineMatchesSlog(t *testing.T, s string, d time.Duration) {
	t.Helper()
	now := time.Date(2026, 12, 1, 13, 4, 5, 123456789, time.FixedZone("x", 3600))
	e := &entry{user: s, connector: "ns/" + s, mode: modeReverse, method: s, host: s, path: "/" + s,
		status: 200, injected: true, binding: s, err: errors.New(s)}
	if s == "" {
		e.binding, e.err = "", nil
	}
	got := appendAuditLine(nil, now, e, d, 12, 34)
	var want bytes.Buffer
	h := slog.NewJSONHandler(&want, nil)
	r := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	r.AddAttrs(slog.String("user", e.user), slog.String("connector", e.connector), slog.String("mode", e.mode),
		slog.String("method", e.method), slog.String("host", e.host), slog.String("path", e.path),
		slog.Int("status", e.status), slog.Int64("bytes", 34), slog.Int64("request_bytes", 12),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.Bool("injected", e.injected))
	if e.binding != "" {
		r.AddAttrs(slog.String("binding_refused", e.binding))
	}
	if e.err != nil {
		r.AddAttrs(slog.String("error", e.err.Error()))
	}
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if string(got) != want.String() {
		t.Fatalf("audit line differs from slog's for %q:\n got %s\nwant %s", s, got, want.String())
	}
	var v map[string]any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
}

func (b *batchWriter) isCooling() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cooling
}
