// Package mounter mounts and unmounts with the mount(2) and umount2(2)
// system calls, so the node plugin executes no program.
//
// k8s.io/mount-utils' own Mounter runs the mount and umount executables,
// which the plugin's image does not carry. Mounter keeps mount-utils for
// everything that only reads (mount-point checks, the mount table) and
// replaces every call that changes a mount.
package mounter
