package main

import (
	"context"
	"time"

	"github.com/connectors-node/connectors-node/internal/exepages"
)

// releaseStartupPages waits until the node is ready (caches synced, CA
// loaded) and then drops the binary's start-up pages (--release-startup-pages).
// A failure is logged and changes nothing else: the pages stay resident.
func (n *node) releaseStartupPages(ctx context.Context) {
	if !n.cfg.releaseStartupPages {
		return
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for n.ready(ctx) != nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
	res, err := exepages.Release()
	if err != nil {
		n.log.Error(err, "releasing the binary's start-up pages; they stay resident")
		return
	}
	n.log.Info("released the binary's start-up pages", "mappings", res.Mappings,
		"mapped_mib", res.Bytes>>20, "rss_file_mib_before", res.FileBefore>>20, "rss_file_mib_after", res.FileAfter>>20)
}
