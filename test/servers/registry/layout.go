package registry

import (
	"archive/tar"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"
)

// OCI media types of the image WriteImage writes.
const (
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// WriteImage writes an OCI image layout to dir holding one image tagged
// tag, whose single uncompressed layer is a tar of one file of layerSize
// random bytes. It returns the manifest digest.
func WriteImage(dir, tag string, layerSize int64) (string, error) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o750); err != nil {
		return "", err
	}
	layer, err := writeLayer(blobs, layerSize)
	if err != nil {
		return "", err
	}
	cfg, err := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "created": time.Now().UTC().Format(time.RFC3339),
		"config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.Digest}},
	})
	if err != nil {
		return "", err
	}
	cfgDesc, err := writeBlob(blobs, mediaTypeConfig, cfg)
	if err != nil {
		return "", err
	}
	man, err := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": MediaTypeManifest, "config": cfgDesc, "layers": []descriptor{layer},
	})
	if err != nil {
		return "", err
	}
	manDesc, err := writeBlob(blobs, MediaTypeManifest, man)
	if err != nil {
		return "", err
	}
	manDesc.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []descriptor{manDesc}})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o600); err != nil {
		return "", err
	}
	return manDesc.Digest, nil
}

func writeBlob(blobs, mediaType string, data []byte) (descriptor, error) {
	sum := sha256.Sum256(data)
	d := descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}
	return d, os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), data, 0o600)
}

// writeLayer streams the random layer tar into blobs under its digest.
func writeLayer(blobs string, size int64) (descriptor, error) {
	tmp, err := os.CreateTemp(blobs, "layer-*")
	if err != nil {
		return descriptor{}, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	tw := tar.NewWriter(cw)
	hdr := &tar.Header{Name: "data.bin", Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return descriptor{}, err
	}
	if _, err := io.CopyN(tw, rand.Reader, size); err != nil {
		return descriptor{}, fmt.Errorf("writing layer: %w", err)
	}
	if err := tw.Close(); err != nil {
		return descriptor{}, err
	}
	if err := tmp.Close(); err != nil {
		return descriptor{}, err
	}
	d := digestOf(h)
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, d[len("sha256:"):])); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: mediaTypeLayer, Digest: d, Size: cw.n}, nil
}

func digestOf(h hash.Hash) string { return "sha256:" + hex.EncodeToString(h.Sum(nil)) }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ManifestDigest reads the digest of the image tagged tag (or the only
// image) from an OCI layout's index.json.
func ManifestDigest(dir, tag string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "index.json")) //nolint:gosec // G304: reads the layout the caller named
	if err != nil {
		return "", err
	}
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return "", fmt.Errorf("parsing index.json: %w", err)
	}
	for _, m := range idx.Manifests {
		if len(idx.Manifests) == 1 || m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest, nil
		}
	}
	return "", fmt.Errorf("no image tagged %q in %s", tag, dir)
}
