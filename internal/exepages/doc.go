// Package exepages releases the resident pages of the running executable's
// own code and read-only data once start-up is over.
//
// A Go binary's text, read-only data and pclntab are mapped from the file.
// Start-up (package init, client and scheme set-up, the first list of
// every informer) runs code spread over the whole binary, and the kernel's
// fault-around maps up to 16 neighbouring pages on each fault when they are
// in the page cache, so after start nearly the whole binary is resident and
// counts in RSS, though serving touches a small part of it.
//
// Release marks those mappings MADV_RANDOM (no read-ahead when a page is
// read back), pages them out with MADV_PAGEOUT (the kernel drops the clean
// pages only this process maps), and then unmaps what is left with
// MADV_DONTNEED (pages that another process also maps, or that PAGEOUT may
// not drop because the process neither owns nor may write the file). Pages
// the process touches again fault back in from the file, one page each
// (or from the page cache with its neighbours), so RSS settles at the
// working set of serving.
//
// Only mappings of /proc/self/exe that are file-backed, readable, never
// writable and hold no private (copy-on-write) pages are touched: never
// anonymous memory, the heap, stacks, writable data or bss, and never
// another file. Their pages are clean copies of the file, so dropping them
// loses nothing.
package exepages
