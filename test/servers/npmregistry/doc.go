// Package npmregistry runs an npm registry for the tests: verdaccio (from
// the npm registry, installed by `make deps` into a cache directory outside
// the repository) with htpasswd authentication, every package readable and
// publishable by its one user only. A small front on the listening address
// records the Basic user of every request, so a test can see which
// credential reached the registry.
package npmregistry
