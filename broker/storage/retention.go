package storage

import (
	"context"
	"time"
)

// StartCleaner runs retention (and compaction for compacted topics) every
// Options.RetentionCheckInterval until ctx ends or the store closes. Calling
// it more than once has no further effect.
func (st *Store) StartCleaner(ctx context.Context) {
	st.cleanerOnce.Do(func() {
		st.bg.Add(1)
		// A pass in progress stops when the store closes, not only with ctx.
		ctx, cancel := context.WithCancel(ctx)
		go func() {
			defer st.bg.Done()
			defer cancel()
			go func() {
				select {
				case <-st.stop:
					cancel()
				case <-ctx.Done():
				}
			}()
			t := time.NewTicker(st.opts.RetentionCheckInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-st.stop:
					return
				case <-t.C:
					st.RunCleaner(ctx)
				}
			}
		}()
	})
}

// RunCleaner makes one retention and compaction pass over every partition
// now. StartCleaner calls it periodically; tests and admin tools may call it.
func (st *Store) RunCleaner(ctx context.Context) {
	for _, p := range st.Partitions() {
		if ctx.Err() != nil {
			return
		}
		cfg := p.Config()
		if cfg.delete() {
			p.applyRetention()
		}
		if cfg.compact() {
			if err := p.compact(ctx); err != nil && ctx.Err() == nil {
				st.log.Warn("compaction failed", "partition", p.dir, "err", err)
			}
		}
	}
}

// applyRetention deletes whole segments that retention.ms or
// retention.bytes no longer keep, oldest first, as Kafka does: a segment
// goes only when all of it is older than retention.ms (its largest
// timestamp), or when the log without it is still at least retention.bytes,
// and only when it lies below the high watermark. The active segment is
// deleted too when it qualifies and is not empty, after rolling a new one,
// so a topic that stopped receiving data does empty out.
func (p *Partition) applyRetention() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	now := p.store.opts.Now()
	cfg := p.cfg
	hw := p.highWatermarkLocked()
	var total int64
	for _, s := range p.segments {
		total += s.size
	}
	deletable := func(s *segment, end int64, last bool) bool {
		if s.size == 0 {
			return !last // an empty segment before others holds nothing
		}
		if end > hw {
			return false
		}
		if cfg.RetentionMs >= 0 && s.maxTimestamp >= 0 && now.UnixMilli()-s.maxTimestamp > cfg.RetentionMs.Milliseconds() {
			return true
		}
		return cfg.RetentionBytes >= 0 && total-s.size >= cfg.RetentionBytes
	}
	for {
		s := p.segments[0]
		last := len(p.segments) == 1
		end := p.leo
		if !last {
			end = p.segments[1].base
		}
		if !deletable(s, end, last) {
			break
		}
		if last {
			if err := p.rollLocked(now, p.leo); err != nil {
				p.store.log.Warn("rolling before deleting the active segment", "partition", p.dir, "err", err)
				return
			}
		}
		total -= s.size
		p.removeFirstSegmentLocked("retention")
	}
}
