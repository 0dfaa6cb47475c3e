package exepages

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Result says what Release did.
type Result struct {
	// Mappings and Bytes are the mappings released and their total size.
	Mappings int
	Bytes    uint64
	// FileBefore and FileAfter are the process's file-backed resident
	// memory (RssFile of /proc/self/status) before and after, in bytes.
	FileBefore, FileAfter uint64
}

// advice is one madvise call's advice; advisor applies it to a mapping.
type advice int

const (
	adviseRandom advice = iota
	advisePageout
	adviseDontNeed
)

func (a advice) String() string {
	switch a {
	case adviseRandom:
		return "MADV_RANDOM"
	case advisePageout:
		return "MADV_PAGEOUT"
	case adviseDontNeed:
		return "MADV_DONTNEED"
	}
	return "advice(" + strconv.Itoa(int(a)) + ")"
}

type advisor func(m Mapping, a advice) error

// Release drops the resident pages of this process's own executable
// mappings (see Releasable and the package documentation) and reports
// what it did.
func Release() (Result, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Result{}, fmt.Errorf("finding the executable: %w", err)
	}
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Result{}, fmt.Errorf("reading the mappings: %w", err)
	}
	maps, err := ParseMaps(bytes.NewReader(raw))
	if err != nil {
		return Result{}, err
	}
	var res Result
	res.FileBefore, _ = rssFile()
	if err := release(maps, exe, madvise, &res); err != nil {
		return res, err
	}
	res.FileAfter, _ = rssFile()
	return res, nil
}

// release applies the advice to every releasable mapping of exe.
func release(maps []Mapping, exe string, advise advisor, res *Result) error {
	targets := Releasable(maps, exe)
	if len(targets) == 0 {
		return fmt.Errorf("no read-only mapping of %s without private pages in /proc/self/smaps", exe)
	}
	for _, m := range targets {
		for _, a := range []advice{adviseRandom, advisePageout, adviseDontNeed} {
			err := advise(m, a)
			if errors.Is(err, errUnsupported) && a == advisePageout {
				continue // before Linux 5.4; MADV_DONTNEED still unmaps
			}
			if err != nil {
				return fmt.Errorf("%s on %x-%x of %s: %w", a, m.Start, m.End, exe, err)
			}
		}
		res.Mappings++
		res.Bytes += uint64(m.Len())
	}
	return nil
}

// rssFile reads RssFile from /proc/self/status, in bytes.
func rssFile() (uint64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if key, value, ok := sizeLine(strings.TrimSuffix(line, "\n")); ok && key == "RssFile" {
			return value, nil
		}
	}
	return 0, errors.New("/proc/self/status: no RssFile")
}
