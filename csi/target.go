package csi

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/mount-utils"
)

// maxTargetPath bounds target_path: PATH_MAX on Linux.
const maxTargetPath = 4096

// checkTargetPath checks that target is an absolute, clean path strictly
// under the kubelet root with no symlink among its existing components.
// root is clean and absolute. Errors are gRPC statuses: InvalidArgument for
// the path's form, FailedPrecondition for what is on disk.
func checkTargetPath(target, root string) error {
	switch {
	case len(target) > maxTargetPath:
		return status.Errorf(codes.InvalidArgument, "target_path is %d bytes long, at most %d allowed", len(target), maxTargetPath)
	case strings.ContainsRune(target, 0):
		return status.Error(codes.InvalidArgument, "target_path contains a NUL byte")
	case !filepath.IsAbs(target):
		return status.Errorf(codes.InvalidArgument, "target_path %q is not absolute", target)
	case filepath.Clean(target) != target:
		return status.Errorf(codes.InvalidArgument, "target_path %q is not clean (it has a trailing slash, \"//\", \".\" or \"..\")", target)
	case !strings.HasPrefix(target, root+string(filepath.Separator)) && root != "/":
		return status.Errorf(codes.InvalidArgument, "target_path %q is not under the kubelet root %s", target, root)
	}
	// The root itself may be a symlink (the operator chose it); below it,
	// none may be.
	rel, err := filepath.Rel(root, target)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "target_path %q is not under the kubelet root %s", target, root)
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return status.Errorf(codes.FailedPrecondition, "target_path %q: checking %s: %v", target, p, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return status.Errorf(codes.FailedPrecondition, "target_path %q: %s is a symlink; symlinks in the target path are not followed", target, p)
		case p != target && !fi.IsDir():
			return status.Errorf(codes.FailedPrecondition, "target_path %q: %s is not a directory", target, p)
		}
	}
	return nil
}

// checkEmptyTarget refuses a target that is not a directory or holds
// anything: a first publish must not hide what is there.
func checkEmptyTarget(target string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return status.Errorf(codes.FailedPrecondition, "target_path %q: %v", target, err)
	case !fi.IsDir():
		return status.Errorf(codes.FailedPrecondition, "target_path %q exists and is not a directory", target)
	}
	f, err := os.Open(target) //nolint:gosec // checked above: a directory under the kubelet root
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "target_path %q: %v", target, err)
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return status.Errorf(codes.FailedPrecondition, "target_path %q is not empty; the volume is not mounted over existing files", target)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return status.Errorf(codes.FailedPrecondition, "target_path %q: %v", target, err)
	}
	return nil
}

// errForeignMount says the mount at a target is not the plugin's.
var errForeignMount = errors.New("not a mount of this plugin")

// errOtherVolume says the mount at a target is the plugin's, made for
// another volume id.
var errOtherVolume = errors.New("mounted by this plugin for another volume")

// checkOwnMount returns an error wrapping errForeignMount unless the top
// mount at target is a tmpfs the plugin mounted, and one wrapping
// errOtherVolume unless it mounted it for volumeID. A tmpfs whose source is
// the plugin's bare name was mounted by a version that did not record the
// volume: it is taken to be volumeID's, so an upgrade leaks no volume.
func checkOwnMount(m mount.Interface, target, volumeID string) error {
	mps, err := m.List()
	if err != nil {
		return fmt.Errorf("listing mounts: %w", err)
	}
	var top *mount.MountPoint
	for i := range mps {
		if mps[i].Path == target {
			top = &mps[i]
		}
	}
	switch {
	case top == nil:
		return fmt.Errorf("the target path is mounted but not in the mount table: %w", errForeignMount)
	case top.Type == "tmpfs" && (top.Device == volumeSource(volumeID) || top.Device == tmpfsSource):
		return nil
	case top.Type == "tmpfs" && strings.HasPrefix(top.Device, tmpfsSource+":"):
		return fmt.Errorf("the tmpfs at the target path belongs to another volume id than %q: %w", truncate(volumeID, 256), errOtherVolume)
	default:
		return fmt.Errorf("the mount at the target path is %s from %q, not a tmpfs from %q: %w",
			top.Type, truncate(top.Device, 256), tmpfsSource, errForeignMount)
	}
}
