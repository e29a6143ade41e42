//go:build race

package fleet

// raceEnabled: the fleet tests run a smaller fleet under the race
// detector (see routes).
const raceEnabled = true
