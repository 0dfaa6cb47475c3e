package atomicwriter

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// DataLink names the symlink to the current version directory. It exists
// once a first Write succeeded.
const DataLink = dataLink

const (
	// dataLink names the symlink to the current version directory.
	dataLink = "..data"
	// newDataLink is the symlink renamed over dataLink to publish a version.
	newDataLink = "..data_tmp"
	// newFileLink is the symlink renamed over a file name to publish it.
	newFileLink = "..link_tmp"
	// reservedPrefix starts every name the layout uses for itself.
	reservedPrefix = ".."
	// versionLayout formats the time part of a version directory name.
	versionLayout = "2006_01_02_15_04_05.000000000_"
)

// Options configure New.
type Options struct {
	// Dir is the existing directory the files appear in. Required.
	Dir string
	// FileMode is the permission of every file. Default 0644.
	FileMode fs.FileMode
	// DirMode is the permission of each version directory. Default 0755.
	DirMode fs.FileMode
	// GID, when set, is the group that owns each version directory and
	// file. Default: the writer's own group.
	GID *int
	// Now is the clock that names version directories. Default time.Now.
	Now func() time.Time
}

// Writer publishes versions of a set of files in one directory. A Writer is
// not safe for concurrent use on the same directory; callers serialize.
type Writer struct {
	opts Options
}

// New builds a Writer for opts.Dir.
func New(opts Options) (*Writer, error) {
	if opts.Dir == "" {
		return nil, errors.New("atomic writer: Dir is required")
	}
	if opts.FileMode == 0 {
		opts.FileMode = 0o644
	}
	if opts.DirMode == 0 {
		opts.DirMode = 0o755
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Writer{opts: opts}, nil
}

// Write makes files the content of the directory. It writes them into a new
// version directory, points ..data at it, links every name to ..data/<name>,
// and removes the links of names no longer written.
//
// Earlier versions stay while they are younger than previousGrace, at most
// keepYoung of them, so a reader that resolved ..data just before a switch
// still finds its files even when switches come quickly; older versions
// (and leftovers of a crash) are removed before a new version is written.
// When the new version does not fit, the young versions give their room
// back and the write is tried once more.
//
// When the current version already holds exactly these files, with the
// configured modes and group, nothing is rewritten and changed is false. On
// error the current version stays current.
func (w *Writer) Write(files map[string][]byte) (changed bool, err error) {
	for name := range files {
		if err := ValidateName(name); err != nil {
			return false, err
		}
		if strings.HasPrefix(name, reservedPrefix) {
			return false, fmt.Errorf("%w %q: names starting with %q are reserved", ErrInvalidName, name, reservedPrefix)
		}
	}
	current, err := w.currentVersion()
	if err != nil {
		return false, err
	}
	if current != "" && w.sameContent(current, files) {
		return false, w.linkNames(files)
	}
	if err := w.pruneVersions(current, keepYoung); err != nil {
		return false, err
	}
	version, err := w.writeVersion(files)
	if errors.Is(err, syscall.ENOSPC) {
		if err := w.pruneVersions(current, 0); err != nil {
			return false, err
		}
		version, err = w.writeVersion(files)
	}
	if err != nil {
		return false, err
	}
	if err := w.publish(version); err != nil {
		_ = os.RemoveAll(filepath.Join(w.opts.Dir, version))
		return false, err
	}
	if err := w.linkNames(files); err != nil {
		return true, err
	}
	if err := w.pruneLinks(files); err != nil {
		return true, err
	}
	return true, nil
}

// currentVersion returns the version directory ..data points at, or "".
func (w *Writer) currentVersion() (string, error) {
	target, err := os.Readlink(filepath.Join(w.opts.Dir, dataLink))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading %s: %w", dataLink, err)
	}
	return target, nil
}

// sameContent reports whether version holds exactly files, with the
// configured modes and group. Any read error counts as a difference.
func (w *Writer) sameContent(version string, files map[string][]byte) bool {
	dir := filepath.Join(w.opts.Dir, version)
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != len(files) {
		return false
	}
	if !w.hasModes(dir, w.opts.DirMode) {
		return false
	}
	for _, e := range entries {
		want, ok := files[e.Name()]
		if !ok || !e.Type().IsRegular() {
			return false
		}
		path := filepath.Join(dir, e.Name())
		if !w.hasModes(path, w.opts.FileMode) {
			return false
		}
		got, err := os.ReadFile(path) //nolint:gosec // path is a validated name inside the writer's own directory
		if err != nil || !bytes.Equal(got, want) {
			return false
		}
	}
	return true
}

func (w *Writer) hasModes(path string, perm fs.FileMode) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != perm {
		return false
	}
	if w.opts.GID == nil {
		return true
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int64(st.Gid) == int64(*w.opts.GID)
}

// writeVersion writes files into a new version directory and returns its name.
func (w *Writer) writeVersion(files map[string][]byte) (version string, err error) {
	dir, err := os.MkdirTemp(w.opts.Dir, reservedPrefix+w.opts.Now().UTC().Format(versionLayout))
	if err != nil {
		return "", fmt.Errorf("creating version directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	for name, data := range files {
		if err := w.writeFile(filepath.Join(dir, name), data); err != nil {
			return "", err
		}
	}
	if err := w.setModes(dir, w.opts.DirMode); err != nil {
		return "", err
	}
	return filepath.Base(dir), nil
}

func (w *Writer) writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, w.opts.FileMode) //nolint:gosec // path is a validated name inside a fresh version directory
	if err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Base(path), err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Base(path), err)
	}
	return w.setModes(path, w.opts.FileMode)
}

// setModes sets the permission bits (the umask may have cleared some) and
// the group.
func (w *Writer) setModes(path string, perm fs.FileMode) error {
	if err := os.Chmod(path, perm); err != nil {
		return fmt.Errorf("setting mode of %s: %w", filepath.Base(path), err)
	}
	if w.opts.GID != nil {
		if err := os.Lchown(path, -1, *w.opts.GID); err != nil {
			return fmt.Errorf("setting group of %s: %w", filepath.Base(path), err)
		}
	}
	return nil
}

// publish points ..data at version with one rename.
func (w *Writer) publish(version string) error {
	tmp := filepath.Join(w.opts.Dir, newDataLink)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale %s: %w", newDataLink, err)
	}
	if err := os.Symlink(version, tmp); err != nil {
		return fmt.Errorf("linking %s: %w", newDataLink, err)
	}
	if err := os.Rename(tmp, filepath.Join(w.opts.Dir, dataLink)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("switching %s: %w", dataLink, err)
	}
	return nil
}

// linkNames makes every name a symlink to ..data/<name>, replacing whatever
// is there with one rename.
func (w *Writer) linkNames(files map[string][]byte) error {
	tmp := filepath.Join(w.opts.Dir, newFileLink)
	for name := range files {
		want := filepath.Join(dataLink, name)
		path := filepath.Join(w.opts.Dir, name)
		if got, err := os.Readlink(path); err == nil && got == want {
			continue
		}
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing stale %s: %w", newFileLink, err)
		}
		if err := os.Symlink(want, tmp); err != nil {
			return fmt.Errorf("linking %s: %w", name, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	return nil
}

// previousGrace is how long an earlier version survives later Writes. A
// reader that resolved ..data to it finds its files unless it stalls that
// long.
const previousGrace = 30 * time.Second

// keepYoung bounds the earlier versions kept while young, so that a burst
// of changes cannot fill a small tmpfs with copies.
const keepYoung = 8

// pruneVersions removes the version directories other than keep, except the
// newest young of them that are younger than previousGrace. Version names
// start with their UTC time, so name order is age order; a name that does
// not parse (a leftover of something else) counts as old.
func (w *Writer) pruneVersions(keep string, young int) error {
	entries, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.opts.Dir, err)
	}
	var old []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() && strings.HasPrefix(name, reservedPrefix) && name != keep {
			old = append(old, name)
		}
	}
	sort.Strings(old)
	for kept := 0; kept < young && len(old) > 0 && w.young(old[len(old)-1]); kept++ {
		old = old[:len(old)-1]
	}
	var errs []error
	for _, name := range old {
		errs = append(errs, os.RemoveAll(filepath.Join(w.opts.Dir, name)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing old versions: %w", err)
	}
	return nil
}

// young reports whether a version was written less than previousGrace ago.
func (w *Writer) young(version string) bool {
	stamp := strings.TrimPrefix(version, reservedPrefix)
	if len(stamp) < len(versionLayout) {
		return false
	}
	t, err := time.Parse(versionLayout, stamp[:len(versionLayout)])
	return err == nil && w.opts.Now().Sub(t) < previousGrace
}

// pruneLinks removes the links, made by an earlier Write, of names not in
// files.
func (w *Writer) pruneLinks(files map[string][]byte) error {
	entries, err := os.ReadDir(w.opts.Dir)
	if err != nil {
		return fmt.Errorf("listing %s: %w", w.opts.Dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if _, keep := files[name]; keep || e.Type()&fs.ModeSymlink == 0 || strings.HasPrefix(name, reservedPrefix) {
			continue
		}
		path := filepath.Join(w.opts.Dir, name)
		if target, err := os.Readlink(path); err == nil && strings.HasPrefix(target, dataLink+"/") {
			errs = append(errs, os.Remove(path))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing old names: %w", err)
	}
	return nil
}
