package registryauth

import (
	"container/list"
	"sync"
	"time"
)

// expiringCache is a bounded LRU of values that expire. The zero value is
// not usable; use newExpiringCache.
type expiringCache[V any] struct {
	max int

	mu    sync.Mutex
	order *list.List // of *expiringItem[V], front = most recent
	items map[string]*list.Element
}

type expiringItem[V any] struct {
	key     string
	val     V
	expires time.Time
}

func newExpiringCache[V any](max int) *expiringCache[V] {
	return &expiringCache[V]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

// get returns the value of key when it has not expired at now.
func (c *expiringCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	it := el.Value.(*expiringItem[V])
	if !now.Before(it.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return zero, false
	}
	c.order.MoveToFront(el)
	return it.val, true
}

// put stores val under key until expires, evicting the least recently
// used entries beyond the bound.
func (c *expiringCache[V]) put(key string, val V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		it := el.Value.(*expiringItem[V])
		it.val, it.expires = val, expires
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&expiringItem[V]{key: key, val: val, expires: expires})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*expiringItem[V]).key)
	}
}

// remove drops key.
func (c *expiringCache[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
}

// len returns the number of entries, expired or not.
func (c *expiringCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
