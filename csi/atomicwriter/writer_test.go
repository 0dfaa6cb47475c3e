package atomicwriter_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/csi/atomicwriter"
	"github.com/connectors-node/connectors-node/test/testenv"
)

func newWriter(t *testing.T, edit func(*atomicwriter.Options)) (*atomicwriter.Writer, string) {
	t.Helper()
	dir := t.TempDir()
	opts := atomicwriter.Options{Dir: dir}
	if edit != nil {
		edit(&opts)
	}
	w, err := atomicwriter.New(opts)
	require.NoError(t, err)
	return w, dir
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	return string(b)
}

func versions(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestNewRequiresDir(t *testing.T) {
	_, err := atomicwriter.New(atomicwriter.Options{})
	assert.Error(t, err)
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"context.token", true},
		{".gitconfig", true},
		{"config.json", true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/abs", false},
		{"a..b", false},
		{"nul\x00", false},
		{"-rf", false},
	}
	for _, tt := range tests {
		err := atomicwriter.ValidateName(tt.name)
		if tt.ok {
			assert.NoError(t, err, "%q", tt.name)
		} else {
			assert.ErrorIs(t, err, atomicwriter.ErrInvalidName, "%q", tt.name)
		}
	}
}

func TestWriteRejectsBadAndReservedNames(t *testing.T) {
	w, dir := newWriter(t, nil)
	for _, name := range []string{"../escape", "..data", "-x", "a/b"} {
		_, err := w.Write(map[string][]byte{"ok": []byte("1"), name: []byte("2")})
		assert.ErrorIs(t, err, atomicwriter.ErrInvalidName, "%q", name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "a rejected write leaves nothing")
}

func TestWriteLayout(t *testing.T) {
	w, dir := newWriter(t, nil)
	changed, err := w.Write(map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	require.NoError(t, err)
	assert.True(t, changed)
	assert.Equal(t, "1", read(t, dir, "a"))
	link, err := os.Readlink(filepath.Join(dir, "a"))
	require.NoError(t, err)
	assert.Equal(t, "..data/a", link)
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(data, ".."), "version dir %q", data)
	fi, err := os.Stat(filepath.Join(dir, "a"))
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o644), fi.Mode().Perm())
}

func TestWriteSameContentChangesNothing(t *testing.T) {
	w, dir := newWriter(t, nil)
	files := map[string][]byte{"a": []byte("1")}
	_, err := w.Write(files)
	require.NoError(t, err)
	before, _ := os.Readlink(filepath.Join(dir, "..data"))
	changed, err := w.Write(files)
	require.NoError(t, err)
	assert.False(t, changed)
	after, _ := os.Readlink(filepath.Join(dir, "..data"))
	assert.Equal(t, before, after)
}

func TestWriteRemovesDroppedNamesAndOldVersions(t *testing.T) {
	w, dir := newWriter(t, nil)
	_, err := w.Write(map[string][]byte{"a": []byte("1"), "b": []byte("2")})
	require.NoError(t, err)
	_, err = w.Write(map[string][]byte{"a": []byte("3")})
	require.NoError(t, err)
	_, err = os.Lstat(filepath.Join(dir, "b"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.Equal(t, "3", read(t, dir, "a"))
	assert.Len(t, versions(t, dir), 2, "current and previous")
	for _, v := range []string{"4", "5", "6"} {
		_, err = w.Write(map[string][]byte{"a": []byte(v)})
		require.NoError(t, err)
	}
	assert.Len(t, versions(t, dir), 5, "young versions stay")
	assert.Equal(t, "6", read(t, dir, "a"))
}

func TestYoungVersionsAreBoundedAndAgeOut(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w, dir := newWriter(t, func(o *atomicwriter.Options) { o.Now = func() time.Time { return now } })
	for i := range 20 {
		_, err := w.Write(map[string][]byte{"a": []byte(strconv.Itoa(i))})
		require.NoError(t, err)
	}
	// The new version, the one it replaced and at most eight young ones.
	assert.Len(t, versions(t, dir), 10)
	assert.Equal(t, "19", read(t, dir, "a"))

	now = now.Add(31 * time.Second)
	_, err := w.Write(map[string][]byte{"a": []byte("late")})
	require.NoError(t, err)
	assert.Len(t, versions(t, dir), 2, "versions past the grace period go; the one just replaced stays")
}

func TestFullTmpfsGivesYoungVersionsRoomBack(t *testing.T) {
	testenv.NeedRoot(t, "mounting a tmpfs")
	dir := t.TempDir()
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"))
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	w, err := atomicwriter.New(atomicwriter.Options{Dir: dir})
	require.NoError(t, err)
	big := func(b byte) map[string][]byte { return map[string][]byte{"a": bytes.Repeat([]byte{b}, 80<<10)} }
	for _, b := range []byte("wxyz") {
		_, err := w.Write(big(b))
		require.NoError(t, err, "version %c", b)
		assert.Equal(t, string(bytes.Repeat([]byte{b}, 80<<10)), read(t, dir, "a"))
	}
	assert.LessOrEqual(t, len(versions(t, dir)), 3, "young versions gave their room back")
}

func TestWriteLeavesForeignFilesAlone(t *testing.T) {
	w, dir := newWriter(t, nil)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "foreign"), []byte("x"), 0o600))
	require.NoError(t, os.Symlink("/etc/hostname", filepath.Join(dir, "other-link")))
	_, err := w.Write(map[string][]byte{"a": []byte("1")})
	require.NoError(t, err)
	assert.Equal(t, "x", read(t, dir, "foreign"))
	_, err = os.Lstat(filepath.Join(dir, "other-link"))
	assert.NoError(t, err)
}

func TestWriteSweepsCrashLeftovers(t *testing.T) {
	w, dir := newWriter(t, nil)
	_, err := w.Write(map[string][]byte{"a": []byte("1")})
	require.NoError(t, err)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "..2001_01_01_00_00_00.1"), 0o700))
	require.NoError(t, os.Symlink("nowhere", filepath.Join(dir, "..data_tmp")))
	_, err = w.Write(map[string][]byte{"a": []byte("2")})
	require.NoError(t, err)
	assert.NotContains(t, versions(t, dir), "..2001_01_01_00_00_00.1")
	assert.Equal(t, "2", read(t, dir, "a"))
}

func TestWriteWithGroup(t *testing.T) {
	testenv.NeedRoot(t, "changing the group")
	gid := 2000
	w, dir := newWriter(t, func(o *atomicwriter.Options) {
		o.FileMode, o.DirMode, o.GID = 0o440, 0o550, &gid
	})
	_, err := w.Write(map[string][]byte{"a": []byte("1")})
	require.NoError(t, err)
	for _, p := range []string{"a", "..data"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		require.NoError(t, err)
		st, ok := fi.Sys().(*syscall.Stat_t)
		require.True(t, ok)
		assert.Equal(t, uint32(gid), st.Gid, p)
	}
	// A group change alone is a change.
	other := 3000
	w2, err := atomicwriter.New(atomicwriter.Options{Dir: dir, FileMode: 0o440, DirMode: 0o550, GID: &other})
	require.NoError(t, err)
	changed, err := w2.Write(map[string][]byte{"a": []byte("1")})
	require.NoError(t, err)
	assert.True(t, changed)
}

func TestFailedWriteKeepsCurrentVersion(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root ignores directory permissions; use a missing directory instead.
		w, err := atomicwriter.New(atomicwriter.Options{Dir: filepath.Join(t.TempDir(), "missing")})
		require.NoError(t, err)
		_, err = w.Write(map[string][]byte{"a": []byte("1")})
		assert.Error(t, err)
		assert.False(t, errors.Is(err, atomicwriter.ErrInvalidName))
		return
	}
	w, dir := newWriter(t, nil)
	_, err := w.Write(map[string][]byte{"a": []byte("1")})
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o500))
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	_, err = w.Write(map[string][]byte{"a": []byte("2")})
	assert.Error(t, err)
	assert.Equal(t, "1", read(t, dir, "a"))
}
