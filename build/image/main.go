// Command image builds the connectors-node image without a container
// engine, plus the stand-in images of the real-node suite, as image
// tarballs in --out, and pushes them when --push names a registry.
//
//	go run ./build/image --out bin/images [--tag dev] [--platforms linux/amd64,linux/arm64] [--push registry.example.com/team] [--only connectors-node]
//
// The connectors-node image is built for every platform of --platforms:
// with more than one, connectors-node.tar is an OCI image layout archive
// holding their image index, and --push pushes the index; with one, it is
// an image tarball of that image alone, as the stand-ins' are. The
// stand-ins are built for the host's architecture only: the real-node
// suite runs them on the host.
//
// The connectors-node image holds the static binary at /connectors-node
// (its entrypoint) and Debian's CA roots at
// /etc/ssl/certs/ca-certificates.crt, nothing else: the binary runs no
// program. The Dockerfile builds the same two files.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/connectors-node/connectors-node/internal/imagebuild"
)

// caBundle is Debian's ca-certificates bundle, the roots the proxy verifies
// upstreams with.
const caBundle = "/etc/ssl/certs/ca-certificates.crt"

// image is one image this command builds.
type image struct {
	name       string
	pkg        string
	binary     string
	entrypoint []string
	caRoots    bool
	// multiArch images are built for every platform of --platforms; the
	// others for the host's architecture.
	multiArch bool
}

var images = []image{
	{name: "connectors-node", pkg: "./cmd/connectors-node", binary: "/connectors-node", entrypoint: []string{"/connectors-node"}, caRoots: true, multiArch: true},
	{name: "csi-node-driver-registrar-standin", pkg: "./test/standins/csi-sidecar", binary: "/csi-sidecar-standin", entrypoint: []string{"/csi-sidecar-standin", "registrar"}},
	{name: "livenessprobe-standin", pkg: "./test/standins/csi-sidecar", binary: "/csi-sidecar-standin", entrypoint: []string{"/csi-sidecar-standin", "livenessprobe"}},
	{name: "pause-standin", pkg: "./test/standins/pause", binary: "/pause", entrypoint: []string{"/pause"}},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// defaultPlatforms are the platforms of the connectors-node image.
const defaultPlatforms = "linux/amd64,linux/arm64"

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("out", "bin/images", "directory for the image tarballs, <name>.tar")
	tag := fs.String("tag", "dev", "the tag of every image")
	version := fs.String("version", "dev", "the version stamped into connectors-node")
	push := fs.String("push", "", "registry and path to push the images to, e.g. registry.example.com/team (empty: no push)")
	insecure := fs.Bool("insecure", false, "push over plain HTTP")
	only := fs.String("only", "", "comma-separated image names to build (default all)")
	platformList := fs.String("platforms", defaultPlatforms, "comma-separated os/arch platforms of the connectors-node image; with more than one it is an image index (the stand-ins are built for the host's architecture)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	platforms, err := imagebuild.ParsePlatforms(*platformList)
	if err != nil {
		return fmt.Errorf("--platforms: %w", err)
	}
	if err := os.MkdirAll(*out, 0o750); err != nil {
		return err
	}
	roots, err := os.ReadFile(caBundle)
	if err != nil {
		return fmt.Errorf("reading the CA roots (apt-get install ca-certificates): %w", err)
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(*only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	host := []imagebuild.Platform{{OS: "linux", Arch: runtime.GOARCH}}
	built := map[string][]byte{}
	for _, im := range images {
		if len(want) > 0 && !want[im.name] {
			continue
		}
		ps := host
		if im.multiArch {
			ps = platforms
		}
		var imgs []imagebuild.PlatformImage
		for _, p := range ps {
			key := im.pkg + " " + p.Arch
			bin, ok := built[key]
			if !ok {
				var ldflags []string
				if im.name == "connectors-node" {
					ldflags = append(ldflags, "-X main.version="+*version)
				}
				if bin, err = imagebuild.GoBuildArch(ctx, ".", im.pkg, p.Arch, ldflags...); err != nil {
					return err
				}
				built[key] = bin
			}
			spec := imagebuild.Spec{
				Files:      []imagebuild.File{{Path: im.binary, Mode: 0o755, Data: bin}},
				Entrypoint: im.entrypoint,
			}
			if im.caRoots {
				spec.Files = append(spec.Files, imagebuild.File{Path: caBundle, Mode: 0o644, Data: roots})
			}
			img, err := imagebuild.Build(spec, p.Arch)
			if err != nil {
				return fmt.Errorf("building %s for %s: %w", im.name, p, err)
			}
			size, err := imagebuild.CompressedSize(img)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(stdout, "%s:%s\t%s\t%.1f MiB compressed\n", im.name, *tag, p, float64(size)/(1<<20))
			imgs = append(imgs, imagebuild.PlatformImage{Platform: p, Image: img})
		}
		if err := write(ctx, stdout, im.name+":"+*tag, filepath.Join(*out, im.name+".tar"), imgs, *push, *insecure); err != nil {
			return fmt.Errorf("%s: %w", im.name, err)
		}
	}
	return nil
}

// write writes the image of one platform as an image tarball, or the
// index of several as an OCI layout archive, to file, and pushes it under
// push when that is set.
func write(ctx context.Context, stdout io.Writer, ref, file string, imgs []imagebuild.PlatformImage, push string, insecure bool) error {
	remoteRef := strings.TrimSuffix(push, "/") + "/" + ref
	if len(imgs) == 1 {
		img := imgs[0].Image
		if err := imagebuild.WriteTarball(file, ref, img); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "%s\t%s\n", ref, file)
		if push == "" {
			return nil
		}
		if err := imagebuild.Push(ctx, remoteRef, img, insecure); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "pushed %s\n", remoteRef)
		return nil
	}
	idx, err := imagebuild.Index(imgs)
	if err != nil {
		return err
	}
	if err := imagebuild.WriteIndexTarball(file, ref, idx); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, "%s\t%s\tindex %s\n", ref, file, d)
	if push == "" {
		return nil
	}
	if err := imagebuild.PushIndex(ctx, remoteRef, idx, insecure); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stdout, "pushed %s\n", remoteRef)
	return nil
}
