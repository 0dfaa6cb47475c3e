// Package testsupport is what tests across the module share that is not a
// test server: the rule that a missing prerequisite skips a test on a
// developer's machine but fails it in CI (CI=true, which .ci/run exports).
package testsupport
