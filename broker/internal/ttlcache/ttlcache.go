// Package ttlcache is a bounded, least-recently-used cache whose entries
// expire, with one computation per key at a time: the shape both the IAM
// token verifier and the IAM-policy authorizer need so that a burst of
// identical questions costs one call to AWS.
package ttlcache

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// Cache maps K to V. The zero value is not usable; call New.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front: most recently used
	items map[K]*list.Element
	calls map[K]*call[V]
}

type entry[K comparable, V any] struct {
	key    K
	val    V
	expiry time.Time
}

type call[V any] struct {
	done chan struct{}
	val  V
	err  error
}

// New returns a cache holding at most size entries (at least one).
func New[K comparable, V any](size int) *Cache[K, V] {
	return &Cache[K, V]{max: max(size, 1), ll: list.New(), items: map[K]*list.Element{}, calls: map[K]*call[V]{}}
}

// Get returns the value of key when it is cached and not expired at now.
func (c *Cache[K, V]) Get(key K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.getLocked(key, now)
}

func (c *Cache[K, V]) getLocked(key K, now time.Time) (V, bool) {
	var zero V
	el, ok := c.items[key]
	if !ok {
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if !now.Before(e.expiry) {
		c.ll.Remove(el)
		delete(c.items, key)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.val, true
}

// Put caches val for key until expiry, evicting the least recently used
// entry when the cache is full.
func (c *Cache[K, V]) Put(key K, val V, expiry time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, val, expiry)
}

func (c *Cache[K, V]) putLocked(key K, val V, expiry time.Time) {
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry[K, V])
		e.val, e.expiry = val, expiry
		c.ll.MoveToFront(el)
		return
	}
	c.items[key] = c.ll.PushFront(&entry[K, V]{key: key, val: val, expiry: expiry})
	for c.ll.Len() > c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*entry[K, V]).key)
	}
}

// Len is the number of entries, expired ones included until they are
// looked up or evicted.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Do returns the cached value of key, or computes it with fn. Concurrent
// callers of one key share a single run of fn. fn returns the value, when
// it expires (a time not after now caches nothing) and an error; an error
// is returned to every waiting caller and never cached.
//
// A caller whose shared run failed because the running caller's context
// ended (not its own) runs fn again, so one impatient client cannot fail
// the others.
func (c *Cache[K, V]) Do(ctx context.Context, key K, now func() time.Time, fn func() (V, time.Time, error)) (V, error) {
	for {
		c.mu.Lock()
		if v, ok := c.getLocked(key, now()); ok {
			c.mu.Unlock()
			return v, nil
		}
		if cl, ok := c.calls[key]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				var zero V
				return zero, ctx.Err()
			}
			if cl.err != nil && isContextErr(cl.err) && ctx.Err() == nil {
				continue
			}
			return cl.val, cl.err
		}
		cl := &call[V]{done: make(chan struct{})}
		c.calls[key] = cl
		c.mu.Unlock()

		val, expiry, err := fn()
		cl.val, cl.err = val, err
		c.mu.Lock()
		if err == nil && expiry.After(now()) {
			c.putLocked(key, val, expiry)
		}
		delete(c.calls, key)
		c.mu.Unlock()
		close(cl.done)
		return val, err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
