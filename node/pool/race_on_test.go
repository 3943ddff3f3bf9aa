//go:build race

package pool

// raceEnabled is true under the race detector, which makes the power-loss
// test ten times slower; it then checks fewer crash points.
const raceEnabled = true
