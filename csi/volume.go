package csi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/csi/atomicwriter"
)

// tmpfsSource names the plugin in the source of every volume tmpfs, in
// /proc/self/mountinfo. Versions before volumeSource used it alone.
const tmpfsSource = "connectors-csi"

// volumeSource is the mount source of volumeID's tmpfs: the plugin's name
// and a digest of the volume id. The mount table itself so records which
// volume a target belongs to: the record is made with the mount, in one
// step, and outlives a plugin killed at any point and restarted.
func volumeSource(volumeID string) string {
	sum := sha256.Sum256([]byte(volumeID))
	return tmpfsSource + ":" + hex.EncodeToString(sum[:16])
}

// maxUnmounts bounds the unmounts of one target, in case mounts were
// stacked there by something else.
const maxUnmounts = 4

// perms are the modes and group of a volume's files and directories.
type perms struct {
	file, dir fs.FileMode
	// gid owns the files and directories when not nil.
	gid *int
}

// permsFor returns the permissions for a mount group: 0644/0755 without
// one; 0440/0550 owned by the group with one.
func permsFor(mountGroup string) (perms, error) {
	if mountGroup == "" {
		return perms{file: 0o644, dir: 0o755}, nil
	}
	gid, err := strconv.ParseUint(mountGroup, 10, 31)
	if err != nil {
		return perms{}, fmt.Errorf("volume_mount_group %q is not a numeric group ID", mountGroup)
	}
	g := int(gid)
	return perms{file: 0o440, dir: 0o550, gid: &g}, nil
}

// isMounted reports whether target is a mount point. A missing target is
// not mounted.
func (n *nodeServer) isMounted(target string) (bool, error) {
	notMount, err := n.opts.Mounter.IsLikelyNotMountPoint(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case mount.IsCorruptedMnt(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("checking the mount at the target path: %w", err)
	}
	return !notMount, nil
}

// mountTmpfs creates target and mounts a fresh tmpfs of volumeID, of the
// configured size, on it, with the root directory's mode and group set
// from p.
func (n *nodeServer) mountTmpfs(volumeID, target string, p perms) error {
	if err := os.MkdirAll(target, 0o750); err != nil {
		return fmt.Errorf("creating the target path: %w", err)
	}
	options := []string{
		"size=" + strconv.FormatInt(n.tmpfsBytes, 10),
		"nosuid", "nodev", "noexec",
		fmt.Sprintf("mode=%#o", p.dir),
	}
	if p.gid != nil {
		options = append(options, "gid="+strconv.Itoa(*p.gid))
	}
	if err := n.mount(volumeSource(volumeID), target, options); err != nil {
		return fmt.Errorf("mounting tmpfs: %w", err)
	}
	// The mount options set the same; this also covers mounters that do
	// not apply them.
	if err := os.Chmod(target, p.dir); err != nil {
		return fmt.Errorf("setting the mode of the volume root: %w", err)
	}
	if p.gid != nil {
		if err := os.Lchown(target, -1, *p.gid); err != nil {
			return fmt.Errorf("setting the group of the volume root: %w", err)
		}
	}
	return nil
}

// mount mounts a tmpfs from source at target. Mounts are serialized:
// mount-utils' Mounter detects systemd lazily on its first Mount without a
// lock, so concurrent Mount calls race.
func (n *nodeServer) mount(source, target string, options []string) error {
	n.mountMu.Lock()
	defer n.mountMu.Unlock()
	return n.opts.Mounter.Mount(source, target, "tmpfs", options)
}

// writeFiles publishes files into target atomically and reports whether
// anything changed.
func writeFiles(target string, files map[string][]byte, p perms) (bool, error) {
	w, err := atomicwriter.New(atomicwriter.Options{Dir: target, FileMode: p.file, DirMode: p.dir, GID: p.gid})
	if err != nil {
		return false, err
	}
	changed, err := w.Write(files)
	if err != nil {
		return changed, fmt.Errorf("writing files: %w", err)
	}
	return changed, nil
}

// unpublish unmounts volumeID's tmpfs at target and removes the directory.
// It touches only what the plugin made for that volume: a target that is
// gone is success (unpublish is idempotent); a file, a mount of something
// else or of another volume, or an unmounted directory holding files is
// refused and left as it is.
func (n *nodeServer) unpublish(volumeID, target string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case mount.IsCorruptedMnt(err):
		// A mount that no longer answers: whose it is decides below.
	case err != nil:
		return fmt.Errorf("checking the target path: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("refusing to remove %s: %w", target, errNotDirectory)
	}
	return n.unmountAndRemove(volumeID, target)
}

// unmountAndRemove unmounts volumeID's tmpfs at target (every stacked
// mount, up to a bound, each of which must be that volume's) and removes
// the directory. A missing target is success.
func (n *nodeServer) unmountAndRemove(volumeID, target string) error {
	for range maxUnmounts {
		mounted, err := n.isMounted(target)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
		if err := checkOwnMount(n.opts.Mounter, target, volumeID); err != nil {
			return fmt.Errorf("refusing to unmount %s: %w", target, err)
		}
		if err := n.opts.Mounter.Unmount(target); err != nil {
			return fmt.Errorf("unmounting the target path: %w", err)
		}
	}
	mounted, err := n.isMounted(target)
	if err != nil {
		return err
	}
	if mounted {
		return fmt.Errorf("the target path is still mounted after %d unmounts", maxUnmounts)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("refusing to remove %s: %w", target, errTargetNotEmpty)
		}
		return fmt.Errorf("removing the target path: %w", err)
	}
	return nil
}

// errTargetNotEmpty says an unmounted target still holds files the plugin
// did not write.
var errTargetNotEmpty = errors.New("the target path is not mounted and not empty: its files are not the plugin's")

// errNotDirectory says the target is not a directory: the plugin makes only
// directories there.
var errNotDirectory = errors.New("the target path is not a directory, so not the plugin's")
