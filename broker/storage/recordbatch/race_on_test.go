//go:build race

package recordbatch

// raceEnabled: under the race detector sync.Pool drops a quarter of what
// is put back, on purpose, so allocation counts say nothing about pooling.
const raceEnabled = true
