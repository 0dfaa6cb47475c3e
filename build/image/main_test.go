package main

import (
	"archive/tar"
	"context"
	"crypto/tls"
	"crypto/x509"
	"debug/elf"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/stretchr/testify/require"

	"github.com/connectors-node/connectors-node/test/apiserver"
	"github.com/connectors-node/connectors-node/test/servers/registry"
	"github.com/connectors-node/connectors-node/test/servers/testpki"
	"github.com/connectors-node/connectors-node/test/testenv"
)

// qemuARM64 is where Debian's qemu-user-static installs the arm64 emulator.
const qemuARM64 = "qemu-aarch64-static"

// TestImageIndexHasBothPlatforms builds the connectors-node image as
// make image does (go run ./build/image, the default platforms) and pushes
// it to a real registry: bin/images/connectors-node.tar is an OCI layout
// holding one index with a linux/amd64 and a linux/arm64 manifest, each
// image's config says the same os/architecture, each binary is an ELF
// executable for that machine, the pushed index is the written one, and
// the arm64 binary answers --version and --help under qemu.
func TestImageIndexHasBothPlatforms(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary for two architectures: make test-integration runs it")
	}
	qemu, err := exec.LookPath(qemuARM64)
	if err != nil {
		testenv.SkipOrFail(t, "%s is not installed (make deps installs qemu-user-static)", qemuARM64)
		return
	}
	if _, err := os.Stat(registry.Binary); err != nil {
		testenv.SkipOrFail(t, "%s is not installed (make deps installs docker-registry)", registry.Binary)
		return
	}
	ca, err := testpki.NewCA("image-test")
	require.NoError(t, err)
	certPEM, keyPEM, err := ca.Issue("127.0.0.1", "localhost")
	require.NoError(t, err)
	srv, err := registry.Start(t.Context(), registry.Config{Dir: t.TempDir(), CertPEM: certPEM, KeyPEM: keyPEM, CAPEM: ca.PEM})
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(caFile, ca.PEM, 0o600))

	out := t.TempDir()
	const version = "v0.0.0-imagetest"
	// With empty build caches this compiles the binary and its
	// dependencies for both platforms: over ten minutes on two cores
	// shared with the other test stages.
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./build/image", "--out", out, "--tag", "t1", "--version", version,
		"--only", "connectors-node", "--push", srv.Addr+"/team")
	cmd.Dir = apiserver.RepoRoot()
	// The pushing process trusts the test registry's CA.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+caFile)
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	t.Logf("%s", b)
	require.Contains(t, string(b), "linux/amd64")
	require.Contains(t, string(b), "linux/arm64")

	dir := t.TempDir()
	untar(t, filepath.Join(out, "connectors-node.tar"), dir)
	lp, err := layout.FromPath(dir)
	require.NoError(t, err)
	top, err := lp.ImageIndex()
	require.NoError(t, err)
	topManifest, err := top.IndexManifest()
	require.NoError(t, err)
	require.Len(t, topManifest.Manifests, 1, "index.json lists the one image index")
	require.Equal(t, types.OCIImageIndex, topManifest.Manifests[0].MediaType)
	require.Equal(t, "index.docker.io/library/connectors-node:t1", topManifest.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	require.NoError(t, err)
	m, err := idx.IndexManifest()
	require.NoError(t, err)
	machines := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}
	var got []string
	var arm64Binary string
	for _, d := range m.Manifests {
		require.NotNil(t, d.Platform, "manifest %s has no platform", d.Digest)
		require.Equal(t, types.OCIManifestSchema1, d.MediaType)
		got = append(got, d.Platform.OS+"/"+d.Platform.Architecture)
		img, err := idx.Image(d.Digest)
		require.NoError(t, err)
		cf, err := img.ConfigFile()
		require.NoError(t, err)
		require.Equal(t, d.Platform.OS, cf.OS)
		require.Equal(t, d.Platform.Architecture, cf.Architecture)
		require.Equal(t, []string{"/connectors-node"}, cf.Config.Entrypoint)
		bin := filepath.Join(t.TempDir(), "connectors-node")
		require.NoError(t, os.WriteFile(bin, fileFromImage(t, img, "connectors-node"), 0o700)) //nolint:gosec // executable on purpose
		f, err := elf.Open(bin)
		require.NoError(t, err)
		require.Equal(t, machines[d.Platform.Architecture], f.Machine, "the %s binary is for another machine", d.Platform.Architecture)
		require.NoError(t, f.Close())
		if d.Platform.Architecture == "arm64" {
			arm64Binary = bin
		}
	}
	require.Equal(t, []string{"linux/amd64", "linux/arm64"}, got)

	// The registry holds the same index.
	ref, err := name.NewTag(srv.Addr + "/team/connectors-node:t1")
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca.PEM))
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	desc, err := remote.Get(ref, remote.WithContext(t.Context()), remote.WithTransport(tr))
	require.NoError(t, err)
	require.Equal(t, types.OCIImageIndex, desc.MediaType)
	want, err := idx.Digest()
	require.NoError(t, err)
	require.Equal(t, want, desc.Digest, "the pushed index is not the written one")

	// The arm64 binary runs under emulation.
	emulate := func(arg string) string {
		t.Helper()
		out, err := exec.CommandContext(t.Context(), qemu, arm64Binary, arg).CombinedOutput() //nolint:gosec // the binary just built
		require.NoError(t, err, "%s %s: %s", arm64Binary, arg, out)
		return string(out)
	}
	require.Equal(t, "connectors-node "+version+"\n", emulate("--version"))
	help := emulate("--help")
	require.Contains(t, help, "Usage: connectors-node")
	require.Contains(t, help, "-metrics-auth")
}

// TestOnePlatformIsAnImageTarball: with one platform (the real-node
// suite's build) connectors-node.tar is a plain image tarball of that
// image, and nothing is built for another architecture.
func TestOnePlatformIsAnImageTarball(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: make test-integration runs it")
	}
	t.Chdir(apiserver.RepoRoot())
	out := t.TempDir()
	var log strings.Builder
	require.NoError(t, run(t.Context(), []string{"--out", out, "--only", "connectors-node", "--platforms", "linux/amd64"}, &log))
	require.NotContains(t, log.String(), "arm64")
	img := imageTarball(t, filepath.Join(out, "connectors-node.tar"))
	cf, err := img.ConfigFile()
	require.NoError(t, err)
	require.Equal(t, "linux", cf.OS)
	require.Equal(t, "amd64", cf.Architecture)
}

func TestBadPlatformsNameTheFlag(t *testing.T) {
	for _, p := range []string{"", "windows/amd64", "arm64", "linux/amd64,linux/amd64", "linux/arm/v7/x"} {
		err := run(t.Context(), []string{"--out", t.TempDir(), "--platforms", p}, io.Discard)
		require.ErrorContains(t, err, "--platforms", "%q", p)
	}
}

// untar extracts file's regular files and directories into dir.
func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file) //nolint:gosec // the test's own output
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		require.True(t, strings.HasPrefix(p, dir+string(filepath.Separator)), "entry %q leaves the archive", h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			require.NoError(t, os.MkdirAll(p, 0o750))
		case tar.TypeReg:
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, b, 0o600))
		default:
			t.Fatalf("unexpected entry %q of type %c", h.Name, h.Typeflag)
		}
	}
}

// fileFromImage returns the content of path (relative, as in the layer)
// from img's layers.
func fileFromImage(t *testing.T, img v1.Image, path string) []byte {
	t.Helper()
	layers, err := img.Layers()
	require.NoError(t, err)
	for _, l := range layers {
		rc, err := l.Uncompressed()
		require.NoError(t, err)
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			if h.Name == path {
				b, err := io.ReadAll(tr)
				require.NoError(t, err)
				_ = rc.Close()
				return b
			}
		}
		_ = rc.Close()
	}
	t.Fatalf("no %s in the image", path)
	return nil
}

// imageTarball reads the one image of an image tarball.
func imageTarball(t *testing.T, file string) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(file, nil)
	require.NoError(t, err)
	return img
}
