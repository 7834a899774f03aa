//go:build race

package server

// raceEnabled: the race detector allows at most 8,128 live goroutines, so tests that hold
// more sessions than that skip under -race.
const raceEnabled = true
