//go:build !race

package testenv

// RaceEnabled reports whether the tests run under the race detector (see
// race.go).
const RaceEnabled = false
