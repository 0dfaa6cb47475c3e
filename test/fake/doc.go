// Package fake is what tests across the module share that is not a
// test server: the in-memory kube.Objects and token reviewer the unit
// tests of the CSI plugin and the proxy, the proxy's benchmarks and every
// other test that needs one run against, and the log buffer their leak
// scans read. It does not import testing; what works on a
// testing.TB is in test/testenv.
package fake
