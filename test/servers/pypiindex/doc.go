// Package pypiindex is a Python package index for the tests, written here
// because no index server (pypiserver, devpi) is packaged for Debian and
// PyPI is not reachable from the test machines. It serves the simple
// repository API (PEP 503) with relative file links, takes uploads with the
// legacy upload API twine speaks, wants HTTP Basic auth for everything, and
// records the user of every request, so a test can see which credential
// reached it. Wheel builds a minimal pure-Python wheel to upload.
package pypiindex
