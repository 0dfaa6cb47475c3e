// Command image builds the connectors-node image without a container
// engine, plus the stand-in images of the real-node suite, as image
// tarballs in --out, and pushes them when --push names a registry.
//
//	go run ./build/image --out bin/images [--tag dev] [--push registry.example.com/team] [--only connectors-node]
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
}

var images = []image{
	{name: "connectors-node", pkg: "./cmd/connectors-node", binary: "/connectors-node", entrypoint: []string{"/connectors-node"}, caRoots: true},
	{name: "csi-node-driver-registrar-standin", pkg: "./test/standins/csi-sidecar", binary: "/csi-sidecar-standin", entrypoint: []string{"/csi-sidecar-standin", "registrar"}},
	{name: "livenessprobe-standin", pkg: "./test/standins/csi-sidecar", binary: "/csi-sidecar-standin", entrypoint: []string{"/csi-sidecar-standin", "livenessprobe"}},
	{name: "pause-standin", pkg: "./test/standins/pause", binary: "/pause", entrypoint: []string{"/pause"}},
}

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	out := flag.String("out", "bin/images", "directory for the image tarballs, <name>.tar")
	tag := flag.String("tag", "dev", "the tag of every image")
	version := flag.String("version", "dev", "the version stamped into connectors-node")
	push := flag.String("push", "", "registry and path to push the images to, e.g. registry.example.com/team (empty: no push)")
	insecure := flag.Bool("insecure", false, "push over plain HTTP")
	only := flag.String("only", "", "comma-separated image names to build (default all)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
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
	built := map[string][]byte{}
	for _, im := range images {
		if len(want) > 0 && !want[im.name] {
			continue
		}
		bin, ok := built[im.pkg]
		if !ok {
			var ldflags []string
			if im.name == "connectors-node" {
				ldflags = append(ldflags, "-X main.version="+*version)
			}
			if bin, err = imagebuild.GoBuild(ctx, ".", im.pkg, ldflags...); err != nil {
				return err
			}
			built[im.pkg] = bin
		}
		spec := imagebuild.Spec{
			Files:      []imagebuild.File{{Path: im.binary, Mode: 0o755, Data: bin}},
			Entrypoint: im.entrypoint,
		}
		if im.caRoots {
			spec.Files = append(spec.Files, imagebuild.File{Path: caBundle, Mode: 0o644, Data: roots})
		}
		img, err := imagebuild.Build(spec, runtime.GOARCH)
		if err != nil {
			return fmt.Errorf("building %s: %w", im.name, err)
		}
		ref := im.name + ":" + *tag
		file := filepath.Join(*out, im.name+".tar")
		if err := imagebuild.WriteTarball(file, ref, img); err != nil {
			return err
		}
		size, err := imagebuild.CompressedSize(img)
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\t%.1f MiB compressed\n", ref, file, float64(size)/(1<<20))
		if *push != "" {
			remoteRef := strings.TrimSuffix(*push, "/") + "/" + ref
			if err := imagebuild.Push(ctx, remoteRef, img, *insecure); err != nil {
				return err
			}
			fmt.Printf("pushed %s\n", remoteRef)
		}
	}
	return nil
}
