//go:build !race

package mq

// See race.go.

func raceRelease() {}
func raceAcquire() {}
