package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// rssSampler reads a process's VmRSS every 50ms until stopped.
type rssSampler struct {
	pid  int
	done chan struct{}
	out  chan rssResult
}

// rssResult is the resident memory before the run and its peak, in MiB.
type rssResult struct {
	base, peak float64
	samples    int
}

func startRSS(pid int) (*rssSampler, error) {
	base, err := vmRSS(pid)
	if err != nil {
		return nil, err
	}
	s := &rssSampler{pid: pid, done: make(chan struct{}), out: make(chan rssResult, 1)}
	go func() {
		res := rssResult{base: base, peak: base, samples: 1}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.done:
				s.out <- res
				return
			case <-tick.C:
				if v, err := vmRSS(pid); err == nil {
					res.peak = max(res.peak, v)
					res.samples++
				}
			}
		}
	}()
	return s, nil
}

// stop ends sampling; a nil sampler reports no samples.
func (s *rssSampler) stop() rssResult {
	if s == nil {
		return rssResult{}
	}
	close(s.done)
	return <-s.out
}

// vmRSS reads VmRSS from /proc/<pid>/status, in MiB.
func vmRSS(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseFloat(string(f[0]), 64)
		if err != nil {
			return 0, err
		}
		return kb / 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
