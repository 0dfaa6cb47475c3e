package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one regular file of a layer.
type File struct {
	// Path is the absolute path in the image.
	Path string
	// Mode is the file's permission bits.
	Mode int64
	// Data is the content.
	Data []byte
}

// Spec describes an image.
type Spec struct {
	// Files are the image's files, in one layer. Parent directories are
	// added with mode 0755.
	Files []File
	// Dirs maps directories to their modes (e.g. /tmp: 01777); parent
	// directories not listed get 0755.
	Dirs map[string]int64
	// Symlinks maps link paths to their targets.
	Symlinks map[string]string
	// Entrypoint is the image's entrypoint.
	Entrypoint []string
	// Env is the image's environment, NAME=value.
	Env []string
	// User is the image's user; default root.
	User string
}

// epoch stamps every file and the config, so the same inputs give the same
// image digest.
var epoch = time.Unix(0, 0).UTC()

// Build returns the image for spec: one layer on an empty base, linux
// for arch, OCI media types.
func Build(spec Spec, arch string) (v1.Image, error) {
	layerTar, err := tarFiles(spec)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "connectors-node imagebuild"}})
	if err != nil {
		return nil, fmt.Errorf("appending the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Env = spec.Env
	cf.Config.User = spec.User
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the config: %w", err)
	}
	return img, nil
}

func tarFiles(spec Spec) ([]byte, error) {
	dirs := map[string]bool{}
	var addDirs func(p string)
	addDirs = func(p string) {
		d := path.Dir(p)
		if d == "/" || d == "." || dirs[d] {
			return
		}
		addDirs(d)
		dirs[d] = true
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("file path %q is not absolute", f.Path)
		}
		addDirs(f.Path)
	}
	for l := range spec.Symlinks {
		addDirs(l)
	}
	for d := range spec.Dirs {
		addDirs(d + "/x")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirList := make([]string, 0, len(dirs))
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		mode, ok := spec.Dirs[d]
		if !ok {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	files := append([]File(nil), spec.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.Path, "/"), Mode: f.Mode, Size: int64(len(f.Data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	links := make([]string, 0, len(spec.Symlinks))
	for l := range spec.Symlinks {
		links = append(links, l)
	}
	sort.Strings(links)
	for _, l := range links {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(l, "/"), Linkname: spec.Symlinks[l], Mode: 0o777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTarball writes img tagged ref to file.
func WriteTarball(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return nil
}

// Push pushes img to ref. Plain HTTP is used for registries on loopback
// addresses and when insecure is set.
func Push(ctx context.Context, ref string, img v1.Image, insecure bool) error {
	tag, err := pushTag(ref, insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(tag, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// GoBuild compiles a main package of the module in dir as a static binary
// for linux on the host's architecture (CGO_ENABLED=0, -trimpath,
// stripped) and returns its bytes.
func GoBuild(ctx context.Context, dir, pkg string, ldflags ...string) ([]byte, error) {
	return GoBuildArch(ctx, dir, pkg, runtime.GOARCH, ldflags...)
}

// GoBuildArch is GoBuild for linux on goarch.
func GoBuildArch(ctx context.Context, dir, pkg, goarch string, ldflags ...string) ([]byte, error) {
	out, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(out) }()
	bin := filepath.Join(out, "bin")
	flags := strings.Join(append([]string{"-s", "-w"}, ldflags...), " ")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", flags, "-o", bin, pkg) //nolint:gosec // the go tool building this repository
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s for linux/%s: %w\n%s", pkg, goarch, err, b)
	}
	return os.ReadFile(bin) //nolint:gosec // the file just built
}

// HostFiles returns the named host files, each at its own path, plus the
// shared libraries ldd lists for the executables among them, so dynamically
// linked host programs (git, sh) run in the image. A named directory brings
// its whole tree, and a symlink brings its target (a file or a tree); a
// symlink met inside a tree whose target is missing, such as the link a
// package ships to another, optional package's file, is left out, while a
// missing named path is an error. Test workloads use it.
func HostFiles(ctx context.Context, paths ...string) ([]File, map[string]string, error) {
	seen := map[string]bool{}
	var files []File
	links := map[string]string{}
	var add func(p string, inTree bool) error
	add = func(p string, inTree bool) error {
		if seen[p] {
			return nil
		}
		seen[p] = true
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if _, err := os.Stat(p); inTree && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			links[p] = target
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			return add(target, inTree)
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			for _, e := range entries {
				if err := add(path.Join(p, e.Name()), true); err != nil {
					return err
				}
			}
			return nil
		}
		data, err := os.ReadFile(p) //nolint:gosec // host files named by the test
		if err != nil {
			return err
		}
		files = append(files, File{Path: p, Mode: int64(fi.Mode().Perm()), Data: data})
		if fi.Mode().Perm()&0o111 == 0 && !strings.Contains(p, ".so") {
			return nil
		}
		libs, err := ldd(ctx, p)
		if err != nil {
			return err
		}
		for _, l := range libs {
			if err := add(l, false); err != nil {
				return err
			}
		}
		return nil
	}
	for _, p := range paths {
		if err := add(p, false); err != nil {
			return nil, nil, fmt.Errorf("adding host file %s: %w", p, err)
		}
	}
	return files, links, nil
}

// ldd lists the absolute library paths of an ELF file; none for other files.
func ldd(ctx context.Context, file string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", file).Output() //nolint:gosec // a host file named by the test
	if err != nil {
		// Static executables, scripts and data files.
		return nil, nil //nolint:nilerr // ldd fails on what it cannot read
	}
	var libs []string
	for line := range strings.Lines(string(out)) {
		for f := range strings.FieldsSeq(line) {
			if strings.HasPrefix(f, "/") {
				libs = append(libs, f)
			}
		}
	}
	return libs, nil
}

// CompressedSize is the sum of img's compressed layer sizes and its config.
func CompressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, err
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}

// Platform is an os/architecture pair an image is built for.
type Platform struct {
	OS, Arch string
}

// ParsePlatforms parses a comma-separated list of os/arch pairs, e.g.
// "linux/amd64,linux/arm64". Only linux is accepted: the binaries are
// static linux executables.
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	seen := map[Platform]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		osName, arch, ok := strings.Cut(f, "/")
		if !ok || osName != "linux" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("platform %q: want linux/<arch>, e.g. linux/arm64", f)
		}
		p := Platform{OS: osName, Arch: arch}
		if seen[p] {
			return nil, fmt.Errorf("platform %q named twice", f)
		}
		seen[p] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("no platform named")
	}
	return out, nil
}

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// PlatformImage is one image of an index.
type PlatformImage struct {
	Platform Platform
	Image    v1.Image
}

// Index returns the OCI image index of imgs, each manifest with its
// platform, in the order given.
func Index(imgs []PlatformImage) (v1.ImageIndex, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	adds := make([]mutate.IndexAddendum, 0, len(imgs))
	for _, pi := range imgs {
		cf, err := pi.Image.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading the %s config: %w", pi.Platform, err)
		}
		if cf.OS != pi.Platform.OS || cf.Architecture != pi.Platform.Arch {
			return nil, fmt.Errorf("the %s image is built for %s/%s", pi.Platform, cf.OS, cf.Architecture)
		}
		adds = append(adds, mutate.IndexAddendum{Add: pi.Image, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: pi.Platform.OS, Architecture: pi.Platform.Arch},
		}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}

// WriteIndexTarball writes idx tagged ref to file as an OCI image layout
// archive (oci-layout, index.json, blobs/), as `docker buildx build
// --output type=oci` does: `ctr image import`, `docker load` (25 and
// later), `skopeo copy oci-archive:` and `crane push` read it. The index's
// entry in index.json carries ref as org.opencontainers.image.ref.name.
func WriteIndexTarball(file, ref string, idx v1.ImageIndex) (err error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	dir, err := os.MkdirTemp("", "imagebuild-layout-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag.Name(),
		"io.containerd.image.name":          tag.Name(),
	})); err != nil {
		return fmt.Errorf("writing the image layout: %w", err)
	}
	tmp := file + ".tmp"
	f, err := os.Create(tmp) //nolint:gosec // the output file the caller names
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	tw := tar.NewWriter(f)
	if err := tarDir(tw, dir); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", file, err)
	}
	return os.Rename(tmp, file)
}

// tarDir writes the regular files and directories under dir, in name
// order, stamped with epoch.
func tarDir(tw *tar.Writer, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: rel + "/", Mode: 0o755, ModTime: epoch})
		}
		data, err := os.ReadFile(p) //nolint:gosec // a file of the layout just written
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
}

// PushIndex pushes idx, and every image it lists, to ref. Plain HTTP is
// used for registries on loopback addresses and when insecure is set.
func PushIndex(ctx context.Context, ref string, idx v1.ImageIndex, insecure bool) error {
	tag, err := pushTag(ref, insecure)
	if err != nil {
		return err
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("pushing %s: %w", ref, err)
	}
	return nil
}

// pushTag parses ref for a push, over plain HTTP when insecure is set (and,
// as go-containerregistry does, for registries on loopback addresses).
func pushTag(ref string, insecure bool) (name.Tag, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: %w", ref, err)
	}
	return tag, nil
}
