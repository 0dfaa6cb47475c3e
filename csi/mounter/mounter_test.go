package mounter_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"k8s.io/mount-utils"

	"github.com/connectors-node/connectors-node/csi/mounter"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// findMount returns the mountinfo entry of dir.
func findMount(t *testing.T, dir string) (mount.MountInfo, bool) {
	t.Helper()
	infos, err := mount.ParseMountInfo("/proc/self/mountinfo")
	require.NoError(t, err)
	for _, mi := range infos {
		if mi.MountPoint == dir {
			return mi, true
		}
	}
	return mount.MountInfo{}, false
}

// TestMountAndUnmountRunNoProgram mounts and unmounts a tmpfs with an empty
// PATH, as in the plugin's image: mount-utils' Mounter fails here with
// `exec: "mount": executable file not found in $PATH`.
func TestMountAndUnmountRunNoProgram(t *testing.T) {
	testenv.NeedRoot(t, "mounting a tmpfs")
	t.Setenv("PATH", "")
	dir := t.TempDir()
	m := mounter.New()
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })

	notMount, err := m.IsLikelyNotMountPoint(dir)
	require.NoError(t, err)
	assert.True(t, notMount)

	require.NoError(t, m.Mount("connectors-csi", dir, "tmpfs",
		[]string{"size=1048576", "nosuid", "nodev", "noexec", "mode=0550", "gid=1234"}))
	mi, ok := findMount(t, dir)
	require.True(t, ok, "no mount at %s", dir)
	assert.Equal(t, "tmpfs", mi.FsType)
	assert.Equal(t, "connectors-csi", mi.Source)
	for _, o := range []string{"nosuid", "nodev", "noexec"} {
		assert.Contains(t, mi.MountOptions, o)
	}
	assert.Contains(t, mi.SuperOptions, "size=1024k")
	assert.Contains(t, mi.SuperOptions, "mode=550")
	assert.Contains(t, mi.SuperOptions, "gid=1234")
	notMount, err = m.IsLikelyNotMountPoint(dir)
	require.NoError(t, err)
	assert.False(t, notMount)

	require.NoError(t, m.Unmount(dir))
	_, ok = findMount(t, dir)
	assert.False(t, ok, "%s still mounted", dir)
	require.ErrorIs(t, m.Unmount(dir), unix.EINVAL, "unmounting what is not mounted")
}

func TestUnmountWithForceDetachesABusyMount(t *testing.T) {
	testenv.NeedRoot(t, "mounting a tmpfs")
	t.Setenv("PATH", "")
	dir := t.TempDir()
	m := mounter.New()
	require.NoError(t, m.Mount("connectors-csi", dir, "tmpfs", []string{"size=65536"}))
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "busy"))
	require.NoError(t, err)
	defer func() { _ = f.Close() }()

	require.ErrorIs(t, m.Unmount(dir), unix.EBUSY)
	require.NoError(t, m.UnmountWithForce(dir, 0))
	_, ok := findMount(t, dir)
	assert.False(t, ok, "%s still mounted", dir)
}

func TestMountRefusesBindAndProgramFlagsAndHidesSensitiveOptions(t *testing.T) {
	m := mounter.New()
	dir := t.TempDir()
	for _, o := range []string{"bind", "rbind", "remount"} {
		err := m.Mount("/etc", dir, "", []string{o})
		require.Error(t, err, o)
		assert.Contains(t, err.Error(), o)
	}
	err := m.MountSensitiveWithoutSystemdWithMountFlags("x", dir, "tmpfs", nil, nil, []string{"--no-canonicalize"})
	require.Error(t, err)

	// An unknown file system fails in the kernel; the error names the
	// target but not the options, which may be secret.
	err = m.MountSensitive("x", filepath.Join(dir, "missing"), "no-such-fs", []string{"size=1"}, []string{"password=hunter2"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
	assert.Contains(t, err.Error(), "missing")
}

// TestNodeBinaryRunsNoProgram fails when a package of this module that the
// node binary links imports os/exec (or k8s.io/utils/exec): the image holds
// no program to run. Dependencies outside the module may import os/exec;
// the end-to-end suite runs the binary with an empty PATH and the real-node
// suite runs it from the image, so any exec on the paths they take fails
// there.
func TestNodeBinaryRunsNoProgram(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not found: %v", err)
	}
	const module = "github.com/connectors-node/connectors-node"
	out, err := exec.Command(gobin, "list", "-deps", "-f", //nolint:gosec,noctx // the go tool listing this repository
		"{{.ImportPath}} {{join .Imports \",\"}}", module+"/cmd/connectors-node").CombinedOutput()
	require.NoError(t, err, "go list: %s", out)
	checked := 0
	for line := range strings.Lines(string(out)) {
		pkg, imports, _ := strings.Cut(strings.TrimSpace(line), " ")
		if pkg != module && !strings.HasPrefix(pkg, module+"/") {
			continue
		}
		checked++
		for imp := range strings.SplitSeq(imports, ",") {
			if imp == "os/exec" || imp == "k8s.io/utils/exec" {
				t.Errorf("%s imports %s: the node binary must run no program", pkg, imp)
			}
		}
	}
	assert.Greater(t, checked, 5, "module packages checked")
}
