package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/singleflight"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// answer is what a fetch learned from the API server.
type answer struct {
	val any
	// ttl is how long val is fresh.
	ttl time.Duration
	// keep lets val be served stale, within the grace period, when a refresh
	// finds the API unavailable. Only allow decisions, accepted tokens and
	// Secrets are kept; a deny is never served past its TTL.
	keep bool
	// limit, when set, is a time val is never served after (a token's expiry).
	limit time.Time
}

// entry is an answer in the cache.
type entry struct {
	val   any
	fresh time.Time // served as a hit until then
	until time.Time // served stale, during an outage, until then
}

// staleCache caches answers for their TTL and, for a grace period after it,
// serves kept answers stale when the API server is unavailable: at once while
// the breaker is open (refreshing in the background), or after a refresh has
// failed as unavailable. A refresh that answers (a deny, a missing object)
// replaces the entry, so stale data never overrides it. Without a cached
// answer, a call fails fast while the breaker is open.
type staleCache struct {
	kind    string
	lru     *utilcache.LRUExpireCache
	now     func() time.Time
	grace   time.Duration
	timeout time.Duration
	breaker *Breaker
	group   singleflight.Group
}

func newStaleCache(kind string, size int, grace, timeout time.Duration, b *Breaker, now func() time.Time) *staleCache {
	return &staleCache{
		kind:    kind,
		lru:     utilcache.NewLRUExpireCacheWithClock(size, clockFunc(now)),
		now:     now,
		grace:   grace,
		timeout: timeout,
		breaker: b,
	}
}

// lookup returns the cached value of key while now is before the time
// that at picks from its entry: fresh, or until.
func (c *staleCache) lookup(key string, at func(entry) time.Time) (any, bool) {
	v, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	e := v.(entry)
	if !c.now().Before(at(e)) {
		return nil, false
	}
	return e.val, true
}

// fresh returns the cached value of key while it is fresh.
func (c *staleCache) fresh(key string) (any, bool) {
	return c.lookup(key, func(e entry) time.Time { return e.fresh })
}

// stale returns the cached value of key while it may be served stale.
func (c *staleCache) stale(key string) (any, bool) {
	return c.lookup(key, func(e entry) time.Time { return e.until })
}

// get returns the answer for key: fresh from the cache, else from fetch (one
// call for all concurrent callers, detached from the caller's cancellation
// and bounded by the timeout), else stale during an outage. hit reports a
// fresh cache answer.
func (c *staleCache) get(ctx context.Context, key string, fetch func(context.Context) (answer, error)) (val any, hit bool, err error) {
	if v, ok := c.fresh(key); ok {
		return v, true, nil
	}
	old, hasOld := c.stale(key)
	if err := c.breaker.Allow(); err != nil {
		if hasOld {
			c.refreshInBackground(key, fetch)
			c.breaker.Stale(c.kind)
			return old, false, nil
		}
		return nil, false, fmt.Errorf("%s: %w", c.kind, err)
	}
	ch := c.group.DoChan(key, func() (any, error) {
		if v, ok := c.fresh(key); ok {
			return v, nil
		}
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		return c.fetchAndStore(callCtx, key, fetch)
	})
	select {
	case res := <-ch:
		val, err = res.Val, res.Err
	case <-ctx.Done():
		val, err = nil, fmt.Errorf("waiting for the API (%s): %w: %w", c.kind, ErrUnavailable, ctx.Err())
	}
	if err != nil && errors.Is(err, ErrUnavailable) && hasOld {
		c.breaker.Stale(c.kind)
		return old, false, nil
	}
	return val, false, err
}

// fetchAndStore calls fetch and caches what it answers. An error that is not
// ErrUnavailable (such as a missing object) drops the cached entry.
func (c *staleCache) fetchAndStore(ctx context.Context, key string, fetch func(context.Context) (answer, error)) (any, error) {
	a, err := fetch(ctx)
	c.breaker.Record(err)
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			c.lru.Remove(key)
		}
		return nil, err
	}
	now := c.now()
	e := entry{val: a.val, fresh: now.Add(a.ttl), until: now.Add(a.ttl)}
	if a.keep {
		e.until = e.until.Add(c.grace)
	}
	if !a.limit.IsZero() && a.limit.Before(e.until) {
		e.until = a.limit
	}
	if life := e.until.Sub(now); life > 0 {
		c.lru.Add(key, e, life)
	} else {
		c.lru.Remove(key)
	}
	return a.val, nil
}

// refreshInBackground refreshes key once (joining a refresh in flight).
func (c *staleCache) refreshInBackground(key string, fetch func(context.Context) (answer, error)) {
	c.group.DoChan(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		return c.fetchAndStore(ctx, key, fetch)
	})
}
