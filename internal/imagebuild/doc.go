// Package imagebuild builds container images without a container engine:
// static Go binaries and a few files in one layer on an empty base, written
// as an image tarball (docker-archive layout with OCI media types, read by
// `ctr image import`, `docker load` and `crane push`) or pushed to a
// registry. make image and the real-node suite use it.
package imagebuild
