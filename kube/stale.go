package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
)

// answer is what a fetch learned from the API server.
type answer struct {
	val any
	// ttl is how long val is fresh.
	ttl time.Duration
	// keep lets val be served stale, within the grace period, once its TTL
	// is over. Only allow decisions, accepted tokens, pods and Secrets are
	// kept; a deny or a deletion is never served past its TTL.
	keep bool
	// limit, when set, is a time val is never served after (a token's expiry).
	limit time.Time
}

// entry is an answer in the cache.
type entry struct {
	val   any
	fresh time.Time // served as a hit until then
	until time.Time // served stale until then; fresh for an answer not kept
	// failed is set once a refresh found the API unavailable: the stale
	// answers that follow are counted as outage serves.
	failed atomic.Bool
	// recheck is set once a user of the answer found it refused (a
	// credential an upstream answered 401 or 403 to): get waits for the
	// read that recheck started rather than serving it.
	recheck atomic.Bool
	// rechecked is when a recheck read this answer; zero for other reads.
	rechecked time.Time
}

// staleCache caches answers for their TTL and, for a grace period after it,
// serves kept answers stale: a kept answer past its TTL is answered at once
// and refreshed in the background, so no caller waits on an API server that
// is slow or gone, and the breaker, not the callers, paces the refreshes. A
// refresh that answers (a deny, a missing object) replaces the entry, so
// stale data never overrides it. Only a miss waits on the API; while the
// breaker is open, a miss fails fast.
type staleCache struct {
	kind    string
	lru     *utilcache.LRUExpireCache
	now     func() time.Time
	grace   time.Duration
	timeout time.Duration
	breaker *Breaker
	group   singleflight.Group
	// refreshing holds the keys with a background refresh in flight.
	refreshing sync.Map
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

// lookup returns the entry of key while it may be served, fresh or stale.
func (c *staleCache) lookup(key string) *entry {
	v, ok := c.lru.Get(key)
	if !ok {
		return nil
	}
	e := v.(*entry)
	if !c.now().Before(e.until) {
		return nil
	}
	return e
}

// get returns the answer for key: fresh from the cache; stale within the
// grace, at once, with a refresh started in the background; else from fetch
// (one call for all concurrent callers, detached from the caller's
// cancellation and bounded by the timeout). hit reports a fresh answer.
func (c *staleCache) get(ctx context.Context, key string, fetch func(context.Context) (answer, error)) (val any, hit bool, err error) {
	if e := c.lookup(key); e != nil {
		if e.recheck.Load() && c.breaker.closed() {
			// The read recheck started, or one of our own.
			val, err := c.wait(ctx, key, fetch, true)
			if err == nil || !errors.Is(err, ErrUnavailable) {
				return val, false, err
			}
			// The API is unavailable: the refused answer is all there is,
			// served stale as below.
		} else if c.now().Before(e.fresh) {
			return e.val, true, nil
		}
		closed := c.breaker.closed()
		if closed {
			c.refresh(key, fetch)
		}
		if !closed || e.failed.Load() {
			c.breaker.Stale(c.kind)
		}
		return e.val, false, nil
	}
	if err := c.breaker.Allow(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", c.kind, err)
	}
	val, err = c.wait(ctx, key, fetch, false)
	return val, false, err
}

// wait reads key with fetch, one call for all concurrent callers (and the
// refresh in flight), detached from the caller's cancellation and bounded
// by the timeout; a fresh answer cached meanwhile is taken as it is. recheck
// marks the answer read as the one a recheck asked for.
func (c *staleCache) wait(ctx context.Context, key string, fetch func(context.Context) (answer, error), recheck bool) (any, error) {
	ch := c.group.DoChan(key, func() (any, error) {
		if e := c.lookup(key); e != nil && c.now().Before(e.fresh) && !e.recheck.Load() {
			return e.val, nil
		}
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
		defer cancel()
		return c.fetchAndStore(callCtx, key, fetch, recheck)
	})
	select {
	case res := <-ch:
		return res.Val, res.Err
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the API (%s): %w: %w", c.kind, ErrUnavailable, ctx.Err())
	}
}

// recheck reads key again now, in the background, because a user found its
// answer refused; until that read answers, get waits for it rather than
// serving the refused answer. An answer that a recheck read less than gap
// ago is not read again: a caller that keeps being refused (a 403 for a
// path the credential may not use, or a credential not rotated yet) causes
// at most one read per gap, not one per request. Without an answer cached
// or while the breaker is open it does nothing: the next get reads, or the
// breaker's probe decides when the API is asked again.
func (c *staleCache) recheck(key string, gap time.Duration, fetch func(context.Context) (answer, error)) {
	e := c.lookup(key)
	if e == nil || !c.breaker.closed() {
		return
	}
	if !e.rechecked.IsZero() && c.now().Sub(e.rechecked) < gap {
		return
	}
	if e.recheck.Swap(true) {
		return // a recheck is under way
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		_, _ = c.wait(ctx, key, fetch, true)
	}()
}

// refresh fetches key again in the background unless a refresh of it is
// in flight. It is called only while the breaker is closed: while it is
// open, the breaker's probe decides when the API is asked again, not the
// traffic.
func (c *staleCache) refresh(key string, fetch func(context.Context) (answer, error)) {
	if _, busy := c.refreshing.LoadOrStore(key, struct{}{}); busy {
		return
	}
	go func() {
		defer c.refreshing.Delete(key)
		// Do joins a miss of the same key that is already asking.
		_, _, _ = c.group.Do(key, func() (any, error) {
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			return c.fetchAndStore(ctx, key, fetch, false)
		})
	}()
}

// fetchAndStore calls fetch and caches what it answers. An error that is not
// ErrUnavailable (such as a missing object) drops the cached entry; one that
// is marks it as served through an outage. recheck records the answer as
// read by a recheck.
func (c *staleCache) fetchAndStore(ctx context.Context, key string, fetch func(context.Context) (answer, error), recheck bool) (any, error) {
	a, err := fetch(ctx)
	c.breaker.Record(err)
	if err != nil {
		if !errors.Is(err, ErrUnavailable) {
			c.lru.Remove(key)
		} else if e := c.lookup(key); e != nil {
			e.failed.Store(true)
			// Through an outage the refused answer is served stale, as
			// any other, rather than every get asking the API again.
			e.recheck.Store(false)
		}
		return nil, err
	}
	now := c.now()
	e := &entry{val: a.val, fresh: now.Add(a.ttl), until: now.Add(a.ttl)}
	if recheck {
		e.rechecked = now
	}
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

// forget drops the entry of key.
func (c *staleCache) forget(key string) { c.lru.Remove(key) }
