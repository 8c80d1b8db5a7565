//go:build !race

package alert

const raceEnabled = false
