// Package atomicwriter writes a set of files into a directory so that a
// reader always sees either the whole old set or the whole new set.
//
// The layout is the one kubelet uses for projected volumes:
//
//	<dir>/..2006_01_02_15_04_05.123456789/<file>   the files of one version
//	<dir>/..data -> ..2006_01_02_15_04_05.123456789 the current version
//	<dir>/<file> -> ..data/<file>                  what readers open
//
// A new version is written into a fresh timestamped directory and published
// by renaming a new `..data` symlink over the old one, which is atomic. Names
// that start with ".." are reserved for this layout.
package atomicwriter
