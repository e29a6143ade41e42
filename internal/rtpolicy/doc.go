// Package rtpolicy is credproxy's Go runtime policy: the settings of the
// runtime that credproxy chooses for itself, rather than leaving Go's
// defaults, and that the user can override with the runtime's own
// variables.
//
// Today that is the garbage collector: GOGC and GOMEMLIMIT defaults
// measured for a proxy (see DefaultGCPercent). GOMAXPROCS follows.
//
// Apply is explicit: main calls it once, before anything else runs, and
// it returns what it set (Applied), which the run command logs at start.
// Nothing is set by importing the package or by an init function, so that
// a test, or a program that embeds credproxy's packages, keeps the
// runtime's settings unless it asks for the policy.
package rtpolicy
