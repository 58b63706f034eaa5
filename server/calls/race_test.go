//go:build race

package calls

// raceEnabled slows the tests' timing bounds and trims their load: the
// race detector makes pion's loops several times slower, and a starved
// real-time receiver loses frames, as it would on any overloaded machine.
const raceEnabled = true
