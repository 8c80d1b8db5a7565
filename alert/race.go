//go:build race

package alert

// raceEnabled: see Group.selfSync.
const raceEnabled = true
