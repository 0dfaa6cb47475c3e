package exepages

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// written lives in the binary's writable data.
var written int

// exeRss is the resident size of this test binary's releasable mappings.
func exeRss(t *testing.T) uint64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	raw, err := os.ReadFile("/proc/self/smaps")
	require.NoError(t, err)
	maps, err := ParseMaps(bytes.NewReader(raw))
	require.NoError(t, err)
	var rss uint64
	for _, m := range Releasable(maps, exe) {
		rss += m.Rss
	}
	return rss
}

// On the real kernel the test binary's file-backed RSS drops, and the
// process keeps running the code it faults back in.
func TestReleaseDropsTheBinarysResidentPages(t *testing.T) {
	written = 42 // a private copy-on-write page of the binary's data
	before := exeRss(t)
	require.Greater(t, before, uint64(1<<20), "the test binary's code and data should be resident after start")
	res, err := Release()
	require.NoError(t, err)
	after := exeRss(t)
	t.Logf("executable RSS %d KiB -> %d KiB; RssFile %d KiB -> %d KiB; %d mappings, %d MiB",
		before>>10, after>>10, res.FileBefore>>10, res.FileAfter>>10, res.Mappings, res.Bytes>>20)
	assert.GreaterOrEqual(t, res.Mappings, 2, "text and read-only data")
	assert.Less(t, after, before/2)
	assert.Less(t, res.FileAfter, res.FileBefore)

	assert.Equal(t, 42, written, "writable data is never released")
	res2, err := Release()
	require.NoError(t, err, "releasing again is harmless")
	assert.Equal(t, res.Mappings, res2.Mappings)
}
