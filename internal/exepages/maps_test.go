package exepages

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const fixtureExe = "/usr/local/bin/connectors-node"

func parseFixture(t *testing.T, name string) []Mapping {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	maps, err := ParseMaps(f)
	require.NoError(t, err)
	return maps
}

func TestParseMaps(t *testing.T) {
	maps := parseFixture(t, "smaps")
	require.Len(t, maps, 16)
	text := maps[0]
	assert.Equal(t, uintptr(0x400000), text.Start)
	assert.Equal(t, uintptr(0x25aa000), text.End)
	assert.Equal(t, "r-xp", text.Perms)
	assert.Equal(t, uint64(11010152), text.Inode)
	assert.Equal(t, fixtureExe, text.Path)
	assert.True(t, text.Sized)
	assert.Equal(t, uint64(25824<<10), text.Rss)
	assert.Zero(t, text.Anonymous)
	assert.Equal(t, "", maps[3].Path, "anonymous memory has no path")
	assert.Equal(t, "[heap]", maps[4].Path)
	assert.Equal(t, uint64(64<<10), maps[6].Anonymous)

	deleted := parseFixture(t, "smaps-deleted")
	assert.Equal(t, "/opt/my tools/connectors-node (deleted)", deleted[0].Path, "a path keeps its spaces")
}

func TestParseMapsWithoutSizes(t *testing.T) {
	maps, err := ParseMaps(strings.NewReader(
		"00400000-025aa000 r-xp 00000000 fe:00 11010152 /bin/x\n" +
			"7ffe1f51f000-7ffe1f540000 rw-p 00000000 00:00 0 [stack]\n"))
	require.NoError(t, err)
	require.Len(t, maps, 2)
	assert.False(t, maps[0].Sized)
	assert.Empty(t, Releasable(maps, "/bin/x"), "without smaps sizes nothing is known to be clean")
}

func TestParseMapsRejectsBadLines(t *testing.T) {
	for _, in := range []string{
		"Rss: 4 kB\n", // a size before any mapping
		"00400000 r-xp 00000000 fe:00 1 /bin/x\n",
		"zz-025aa000 r-xp 00000000 fe:00 1 /bin/x\n",
		"025aa000-00400000 r-xp 00000000 fe:00 1 /bin/x\n",
		"00400000-025aa000 r-x 00000000 fe:00 1 /bin/x\n",
		"00400000-025aa000 r-xp 00000000 fe:00 x /bin/x\n",
		"00400000-025aa000 r-xp 00000000\n",
	} {
		_, err := ParseMaps(strings.NewReader(in))
		assert.Error(t, err, "%q", in)
	}
}

// The release touches the executable's clean read-only mappings and
// nothing else: not its writable data (even while still clean), not bss
// or the heap, not a relocated segment with private pages, not other files
// or pseudo mappings, not a mapping without access.
func TestReleasableOnlyTheExecutablesCleanReadOnlyMappings(t *testing.T) {
	maps := parseFixture(t, "smaps")
	got := Releasable(maps, fixtureExe)
	require.Len(t, got, 2)
	assert.Equal(t, maps[0], got[0])
	assert.Equal(t, maps[1], got[1])
	for _, m := range got {
		assert.Equal(t, fixtureExe, m.Path)
		assert.NotZero(t, m.Inode)
		assert.NotContains(t, m.Perms[:2], "w")
		assert.Zero(t, m.Anonymous)
	}
	assert.Empty(t, Releasable(maps, ""), "no executable, nothing")
	assert.Empty(t, Releasable(maps, "[heap]"), "a pseudo mapping is not a file")

	deleted := parseFixture(t, "smaps-deleted")
	assert.Len(t, Releasable(deleted, "/opt/my tools/connectors-node (deleted)"), 2)
}

type call struct {
	start uintptr
	a     advice
}

// recordRelease runs release on the fixture with an advisor that records
// each call and answers fail for that advice.
func recordRelease(t *testing.T, failing advice, fail error) ([]call, Result, error) {
	t.Helper()
	var calls []call
	var res Result
	err := release(parseFixture(t, "smaps"), fixtureExe, func(m Mapping, a advice) error {
		calls = append(calls, call{m.Start, a})
		if a == failing {
			return fail
		}
		return nil
	}, &res)
	return calls, res, err
}

func TestReleaseAdvisesEachMappingInOrder(t *testing.T) {
	calls, res, err := recordRelease(t, -1, nil)
	require.NoError(t, err)
	assert.Equal(t, []call{
		{0x400000, adviseRandom}, {0x400000, advisePageout}, {0x400000, adviseDontNeed},
		{0x25aa000, adviseRandom}, {0x25aa000, advisePageout}, {0x25aa000, adviseDontNeed},
	}, calls)
	assert.Equal(t, 2, res.Mappings)
	assert.Equal(t, uint64(0x5323000-0x400000), res.Bytes)
}

func TestReleaseWithoutPageoutStillUnmaps(t *testing.T) {
	calls, res, err := recordRelease(t, advisePageout, errUnsupported)
	require.NoError(t, err)
	assert.Len(t, calls, 6)
	assert.Equal(t, 2, res.Mappings)
}

func TestReleaseErrors(t *testing.T) {
	var res Result
	err := release(parseFixture(t, "smaps"), "/bin/other", func(Mapping, advice) error { return nil }, &res)
	require.ErrorContains(t, err, "/bin/other")

	boom := errors.New("boom")
	_, res, err = recordRelease(t, adviseDontNeed, boom)
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "MADV_DONTNEED on 400000-25aa000 of "+fixtureExe)
	assert.Zero(t, res.Mappings)
}
