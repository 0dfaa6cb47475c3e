package exepages

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Mapping is one mapping of /proc/<pid>/smaps (or maps, without the
// sizes).
type Mapping struct {
	// Start and End are the mapping's address range, [Start, End).
	Start, End uintptr
	// Perms is the permission field, e.g. "r-xp".
	Perms string
	// Inode is the mapped file's inode; 0 for anonymous memory.
	Inode uint64
	// Path is the mapped file or a pseudo name such as "[heap]"; empty
	// for anonymous memory.
	Path string
	// Sized reports whether the sizes below were read (smaps, not maps).
	Sized bool
	// Rss is the resident size and Anonymous its private anonymous
	// (copy-on-write) part, in bytes.
	Rss, Anonymous uint64
}

// Len is the mapping's size in bytes.
func (m Mapping) Len() uintptr { return m.End - m.Start }

// ParseMaps parses the text of /proc/<pid>/smaps or /proc/<pid>/maps.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var out []Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if key, value, ok := sizeLine(text); ok {
			if len(out) == 0 {
				return nil, fmt.Errorf("maps line %d: %q before the first mapping", line, text)
			}
			m := &out[len(out)-1]
			m.Sized = true
			switch key {
			case "Rss":
				m.Rss = value
			case "Anonymous":
				m.Anonymous = value
			}
			continue
		}
		if isField(text) {
			continue // VmFlags, THPeligible and other fields without a size
		}
		m, err := parseHeader(text)
		if err != nil {
			return nil, fmt.Errorf("maps line %d: %w", line, err)
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading maps: %w", err)
	}
	return out, nil
}

// isField reports whether s is an smaps field line ("Name: ..."); a
// mapping's header starts with its hexadecimal address range instead.
func isField(s string) bool {
	key, _, ok := strings.Cut(s, ":")
	return ok && key != "" && !strings.ContainsAny(key, " -")
}

// sizeLine parses an smaps size line, "Rss:   1234 kB", into bytes.
func sizeLine(s string) (string, uint64, bool) {
	if !isField(s) {
		return "", 0, false
	}
	key, rest, _ := strings.Cut(s, ":")
	f := strings.Fields(rest)
	if len(f) != 2 || f[1] != "kB" {
		return "", 0, false
	}
	kb, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return key, kb << 10, true
}

// parseHeader parses "start-end perms offset dev inode [path]"; the path
// may hold spaces.
func parseHeader(s string) (Mapping, error) {
	var m Mapping
	rest := s
	var fields [5]string
	for i := range fields {
		rest = strings.TrimLeft(rest, " ")
		f, r, _ := strings.Cut(rest, " ")
		if f == "" {
			return m, fmt.Errorf("%q: want at least 5 fields", s)
		}
		fields[i], rest = f, r
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return m, fmt.Errorf("%q: address %q is not start-end", s, fields[0])
	}
	start, err := strconv.ParseUint(lo, 16, 64)
	if err != nil {
		return m, fmt.Errorf("%q: start address: %w", s, err)
	}
	end, err := strconv.ParseUint(hi, 16, 64)
	if err != nil {
		return m, fmt.Errorf("%q: end address: %w", s, err)
	}
	if end < start {
		return m, fmt.Errorf("%q: end address below start", s)
	}
	if len(fields[1]) != 4 {
		return m, fmt.Errorf("%q: permissions %q", s, fields[1])
	}
	inode, err := strconv.ParseUint(fields[4], 10, 64)
	if err != nil {
		return m, fmt.Errorf("%q: inode: %w", s, err)
	}
	m.Start, m.End = uintptr(start), uintptr(end)
	m.Perms = fields[1]
	m.Inode = inode
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

// Releasable returns the mappings of the file exe whose pages can be
// dropped and read back from the file unchanged: file-backed (an inode),
// readable, never writable, and known (from smaps) to hold no private
// anonymous page: text, read-only data, pclntab. Anonymous memory, the
// heap, stacks, writable data and bss are never among them, nor mappings
// of any other file.
func Releasable(maps []Mapping, exe string) []Mapping {
	var out []Mapping
	for _, m := range maps {
		if exe == "" || m.Path != exe || m.Inode == 0 || m.End <= m.Start {
			continue
		}
		if m.Perms[0] != 'r' || m.Perms[1] != '-' {
			continue
		}
		if !m.Sized || m.Anonymous != 0 {
			continue
		}
		out = append(out, m)
	}
	return out
}
