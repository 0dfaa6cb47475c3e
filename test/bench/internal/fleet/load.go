package fleet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load holds conns keep-alive connections to a node's reverse proxy, each
// sending one small GET after another through the path-form address of a
// pod's Connector (round robin over the pods and their Connectors), until
// Stop.
type Load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64
	failed atomic.Int64
	errMu  sync.Mutex
	err    error
}

// StartLoad starts the connections; each waits pause between requests
// (0: none).
func (n *Node) StartLoad(ctx context.Context, conns int, pods []Pod, pause time.Duration) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cancel: cancel}
	type target struct{ url, token string }
	var targets []target
	for _, p := range pods {
		for _, c := range p.Connectors {
			targets = append(targets, target{
				url:   fmt.Sprintf("http://%s/namespaces/%s/connectors/%s/info/refs", n.Proxy, c.Namespace, c.Name),
				token: p.Token,
			})
		}
	}
	for i := range conns {
		t := targets[i%len(targets)]
		l.wg.Go(func() {
			tr := &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
				DisableCompression:  true,
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			for ctx.Err() == nil {
				if err := get(ctx, c, t.url, t.token); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.errMu.Lock()
					if l.err == nil {
						l.err = err
					}
					l.errMu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				l.ok.Add(1)
				if pause > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			}
		})
	}
	return l
}

func get(ctx context.Context, c *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// Done is the number of requests answered 200 so far.
func (l *Load) Done() int64 { return l.ok.Load() }

// Stop ends the load and returns the requests that succeeded and failed,
// with the first failure.
func (l *Load) Stop() (ok, failed int64, err error) {
	l.cancel()
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.err
}

// Send sends count GETs through n for each of the pod's Connectors, one
// after another.
func (n *Node) Send(ctx context.Context, p Pod, count int) error {
	c := &http.Client{Timeout: 30 * time.Second}
	defer c.CloseIdleConnections()
	for _, ref := range p.Connectors {
		for range count {
			if err := get(ctx, c, fmt.Sprintf("http://%s/namespaces/%s/connectors/%s/info/refs", n.Proxy, ref.Namespace, ref.Name), p.Token); err != nil {
				return err
			}
		}
	}
	return nil
}
