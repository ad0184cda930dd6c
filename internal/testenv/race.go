//go:build race

package testenv

// RaceEnabled reports whether the tests run under the race detector, whose
// sync.Pool drops a share of what is put back at random: a test counting
// allocations means nothing under it.
const RaceEnabled = true
