// Package registry runs OCI registries for the tests and the benchmark: the
// CNCF distribution registry (docker-registry) on loopback with htpasswd or
// token authentication, a token service that signs JWTs the registry
// accepts, the certificates they need, and an OCI image layout writer for
// images with one large random layer.
package registry
