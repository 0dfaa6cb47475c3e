package node

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/mount-utils"
)

// volumeWatch records the content of every file seen in a connectors-csi
// tmpfs on the nodes while the suite runs, so a story can check that a
// credential was in none of them, even after the pod's volume is gone.
type volumeWatch struct {
	mu    sync.Mutex
	files map[string]string
}

func (w *volumeWatch) run(ctx context.Context, nodes []*worker) {
	for {
		for _, n := range nodes {
			w.scan(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// scan reads the files of the node's connectors-csi tmpfs mounts, through
// the node's view of the file system.
func (w *volumeWatch) scan(n *worker) {
	infos, err := n.mounts()
	if err != nil {
		return
	}
	for _, mi := range infos {
		if !strings.HasPrefix(mi.Source, "connectors-csi") {
			continue
		}
		_ = filepath.WalkDir(n.root()+mi.MountPoint, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSymlink != 0 {
				return nil //nolint:nilerr // a volume going away while scanned
			}
			b, err := os.ReadFile(p) //nolint:gosec // files of the plugin's volumes
			if err != nil {
				return nil //nolint:nilerr // a volume going away while scanned
			}
			w.mu.Lock()
			w.files[p] = string(b)
			w.mu.Unlock()
			return nil
		})
	}
}

// seen returns the files seen whose path contains sub (a pod UID), by path.
func (w *volumeWatch) seen(sub string) map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]string{}
	for p, c := range w.files {
		if strings.Contains(p, sub) {
			out[p] = c
		}
	}
	return out
}

// mounts returns the node's mount table.
func (n *worker) mounts() ([]mount.MountInfo, error) {
	return mount.ParseMountInfo(fmt.Sprintf("/proc/%d/mountinfo", n.holder.Process.Pid))
}
