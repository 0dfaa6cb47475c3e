// Package mavenrepo runs a Maven repository for the tests: nginx on
// loopback behind HTTP Basic auth, taking deployments with WebDAV PUT and
// serving everything it does not hold from Debian's /usr/share/maven-repo,
// so mvn finds its plugins without Maven Central. It records the user and
// the Authorization header of every request, so a test can see which
// credential reached it and that a token did not.
package mavenrepo
