package fleet

import (
	"context"
	"time"
)

// PeakSampler samples a node's memory every interval and keeps the peak
// of each figure.
type PeakSampler struct {
	cancel context.CancelFunc
	done   chan Memory
}

// SamplePeak starts sampling n.
func (n *Node) SamplePeak(ctx context.Context, every time.Duration) *PeakSampler {
	ctx, cancel := context.WithCancel(ctx)
	s := &PeakSampler{cancel: cancel, done: make(chan Memory, 1)}
	go func() {
		var peak Memory
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if m, err := n.Memory(ctx); err == nil {
				if m.RSS > peak.RSS {
					peak.RSS, peak.Anon, peak.File = m.RSS, m.Anon, m.File
				}
				peak.Retained = max(peak.Retained, m.Retained)
				peak.Stacks = max(peak.Stacks, m.Stacks)
				peak.HeapInuse = max(peak.HeapInuse, m.HeapInuse)
				peak.Goroutines = max(peak.Goroutines, m.Goroutines)
			}
			select {
			case <-ctx.Done():
				s.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peaks.
func (s *PeakSampler) Stop() Memory {
	s.cancel()
	return <-s.done
}
