package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
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
	if sink.writes != 3 {
		t.Errorf("%d writes, want one per line when idle", sink.writes)
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
	b := newBatchWriter(blocking)
	_, _ = b.Write([]byte("first\n"))
	go b.flush() // blocks inside the sink
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
