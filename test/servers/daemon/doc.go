// Package daemon runs a server program for a test: its output goes to a
// log file, WaitReady polls an address until the server answers (or
// reports the log if the program exits first), and Stop ends it with
// SIGTERM, then SIGKILL after a grace period.
package daemon
