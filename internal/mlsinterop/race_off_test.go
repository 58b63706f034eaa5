//go:build !race

package mlsinterop

// raceDetector is set when the tests run under the race detector, which
// makes the signatures of the NIST-curve suites many times slower.
const raceDetector = false
