// Package fake is what tests across the module share that is not a
// test server: the rule that a missing prerequisite skips a test on a
// developer's machine but fails it in CI (CI=true, which .ci/run exports),
// the in-memory kube.Objects and token reviewer the unit tests of the CSI
// plugin and the proxy run against, and the log buffer their leak scans
// read.
package fake
