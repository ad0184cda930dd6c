package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// epochEntry: leader epoch `epoch` wrote its first batch at offset start.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache is the leader-epoch checkpoint of KIP-101: for each leader
// epoch, the first offset written in it. Followers use it to find where
// their log diverges from a new leader's.
type epochCache struct {
	entries []epochEntry
}

func (c *epochCache) latest() (epochEntry, bool) {
	if len(c.entries) == 0 {
		return epochEntry{}, false
	}
	return c.entries[len(c.entries)-1], true
}

// assign records that epoch wrote at offset; it reports whether the cache
// changed. Epochs only grow; an older epoch is ignored.
func (c *epochCache) assign(epoch int32, offset int64) bool {
	if epoch < 0 {
		return false
	}
	if last, ok := c.latest(); ok && epoch <= last.epoch {
		return false
	}
	c.entries = append(c.entries, epochEntry{epoch: epoch, start: offset})
	return true
}

// endOffsetFor answers OffsetForLeaderEpoch as Kafka's
// LeaderEpochFileCache.endOffsetFor does: the largest epoch <= requested,
// and the start offset of the epoch after it (or the log end offset when
// requested is the latest epoch). (-1, -1) when unknown.
func (c *epochCache) endOffsetFor(requested int32, logEnd int64) (int32, int64) {
	last, ok := c.latest()
	if requested < 0 || !ok {
		return -1, -1
	}
	if requested == last.epoch {
		return requested, logEnd
	}
	higher := -1
	for i, e := range c.entries {
		if e.epoch > requested {
			higher = i
			break
		}
	}
	if higher < 0 {
		return -1, -1
	}
	if higher == 0 {
		return requested, c.entries[0].start
	}
	return c.entries[higher-1].epoch, c.entries[higher].start
}

// truncateFromEnd drops epochs that start at or after offset (TruncateTo).
func (c *epochCache) truncateFromEnd(offset int64) bool {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].start >= offset {
		n--
	}
	changed := n != len(c.entries)
	c.entries = c.entries[:n]
	return changed
}

// truncateFromStart moves the log start to offset: epochs that ended before
// it go, and the epoch holding it starts at it.
func (c *epochCache) truncateFromStart(offset int64) bool {
	keep := 0
	for keep+1 < len(c.entries) && c.entries[keep+1].start <= offset {
		keep++
	}
	changed := keep > 0
	c.entries = c.entries[keep:]
	if len(c.entries) > 0 && c.entries[0].start < offset {
		c.entries[0].start = offset
		changed = true
	}
	return changed
}

// Kafka's leader-epoch-checkpoint text format: version, count, then
// "epoch startOffset" lines.
func (c *epochCache) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d\n%d\n", checkpointVersion, len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return b.Bytes()
}

func (c *epochCache) write(dir string) error {
	return writeFileAtomic(filepath.Join(dir, leaderEpochFile), c.encode())
}

func readEpochCache(dir string) (epochCache, error) {
	path := filepath.Join(dir, leaderEpochFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return epochCache{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != strconv.Itoa(checkpointVersion) {
		return epochCache{}, fmt.Errorf("%s: bad header", path)
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n != len(lines)-2 {
		return epochCache{}, fmt.Errorf("%s: bad entry count", path)
	}
	var c epochCache
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) != 2 {
			return epochCache{}, fmt.Errorf("%s: bad line %q", path, line)
		}
		epoch, err1 := strconv.ParseInt(f[0], 10, 32)
		start, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return epochCache{}, fmt.Errorf("%s: bad line %q", path, line)
		}
		if last, ok := c.latest(); ok && (int32(epoch) <= last.epoch || start < last.start) {
			return epochCache{}, fmt.Errorf("%s: entries out of order at %q", path, line)
		}
		c.entries = append(c.entries, epochEntry{epoch: int32(epoch), start: start})
	}
	return c, nil
}
