// Package testenv holds what tests need of the machine they run on: the
// rule that a missing prerequisite skips a test on a developer's machine
// but fails it in CI (CI=true, which .ci/run exports), and extra loopback
// addresses for tests that play several clients. Unlike the fakes in
// test/fake, it works on a testing.TB.
package testenv
