// Package testcheck holds checks that read credproxy's own test code, such
// as that no test ends a goroutine other than its own with t.Fatal. It has
// no code of its own; its tests are the checks.
package testcheck
