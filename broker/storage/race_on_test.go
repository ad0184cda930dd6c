//go:build race

package storage

// raceEnabled: under the race detector sync.Pool drops a quarter of what
// is put back, on purpose, so allocation counts say little about pooling.
const raceEnabled = true
