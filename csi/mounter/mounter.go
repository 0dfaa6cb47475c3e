package mounter

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/mount-utils"
)

// Mounter is a mount.Interface that changes mounts with system calls only.
// Its zero value is ready to use.
type Mounter struct {
	// The zero mount-utils Mounter reads /proc and stats paths; it runs a
	// program only to mount or unmount, which Mounter overrides, and in
	// New, which Mounter does not call.
	mount.Mounter
}

var (
	_ mount.Interface             = (*Mounter)(nil)
	_ mount.MounterForceUnmounter = (*Mounter)(nil)
)

// New returns a Mounter.
func New() *Mounter { return &Mounter{} }

// flags maps the mount options that are flags of mount(2) to those flags.
// Every other option is passed to the file system as data.
var flags = map[string]uintptr{
	"ro":          unix.MS_RDONLY,
	"nosuid":      unix.MS_NOSUID,
	"nodev":       unix.MS_NODEV,
	"noexec":      unix.MS_NOEXEC,
	"noatime":     unix.MS_NOATIME,
	"nodiratime":  unix.MS_NODIRATIME,
	"relatime":    unix.MS_RELATIME,
	"strictatime": unix.MS_STRICTATIME,
	"sync":        unix.MS_SYNCHRONOUS,
	"dirsync":     unix.MS_DIRSYNC,
	"nosymfollow": unix.MS_NOSYMFOLLOW,
	"rw":          0,
	"defaults":    0,
}

// Mount mounts source on target as fstype. Options that are mount(2)
// flags become flags; the rest are the file system's data. Bind mounts
// are refused: the plugin mounts only new file systems.
func (m *Mounter) Mount(source, target, fstype string, options []string) error {
	return m.mount(source, target, fstype, options, nil)
}

// MountSensitive is Mount; sensitive options are passed but never appear in
// an error.
func (m *Mounter) MountSensitive(source, target, fstype string, options, sensitive []string) error {
	return m.mount(source, target, fstype, options, sensitive)
}

// MountSensitiveWithoutSystemd is MountSensitive: Mounter never uses
// systemd.
func (m *Mounter) MountSensitiveWithoutSystemd(source, target, fstype string, options, sensitive []string) error {
	return m.mount(source, target, fstype, options, sensitive)
}

// MountSensitiveWithoutSystemdWithMountFlags is MountSensitive; mountFlags
// (flags of the mount program) are refused when given.
func (m *Mounter) MountSensitiveWithoutSystemdWithMountFlags(source, target, fstype string, options, sensitive, mountFlags []string) error {
	if len(mountFlags) > 0 {
		return fmt.Errorf("mounting %s: mount program flags %q are not supported", target, mountFlags)
	}
	return m.mount(source, target, fstype, options, sensitive)
}

func (m *Mounter) mount(source, target, fstype string, options, sensitive []string) error {
	var flag uintptr
	var data []string
	for _, o := range append(append([]string(nil), options...), sensitive...) {
		if o == "bind" || o == "rbind" || o == "remount" {
			return fmt.Errorf("mounting %s: option %q is not supported", target, o)
		}
		if f, ok := flags[o]; ok {
			flag |= f
			continue
		}
		data = append(data, o)
	}
	if err := unix.Mount(source, target, fstype, flag, strings.Join(data, ",")); err != nil {
		// The options are left out: sensitive ones may be among them.
		return fmt.Errorf("mount(2) of %s %s on %s: %w", fstype, source, target, err)
	}
	return nil
}

// Unmount unmounts the file system mounted on target with umount2(2),
// without MNT_DETACH: a busy mount fails with EBUSY rather than lingering.
// A target that is not a mount point fails with EINVAL.
func (m *Mounter) Unmount(target string) error {
	if err := unix.Unmount(target, 0); err != nil {
		return fmt.Errorf("umount2(2) of %s: %w", target, err)
	}
	return nil
}

// CanSafelySkipMountPointCheck reports false: Unmount of a path that is not
// a mount point fails, so callers check first.
func (m *Mounter) CanSafelySkipMountPointCheck() bool { return false }

// UnmountWithForce unmounts target; when it is busy it detaches it
// (MNT_DETACH), so it goes once its last user does. The timeout is unused:
// umount2(2) does not block on tmpfs.
func (m *Mounter) UnmountWithForce(target string, _ time.Duration) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("umount2(2) of %s: %w", target, err)
	}
	return nil
}
