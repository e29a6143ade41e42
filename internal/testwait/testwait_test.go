package testwait

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a T whose Fatalf records the message and ends its
// goroutine, as testing's does.
type recorder struct{ msg string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f with a recorder on a goroutine of its own, as Fatalf ends it.
func run(f func(T)) (msg string, returned bool) {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
		returned = true
	}()
	<-done
	return r.msg, returned
}

// TestEventuallyReturnsOnceTrue: a condition that holds on the third call
// ends the wait there, without a failure.
func TestEventuallyReturnsOnceTrue(t *testing.T) {
	var calls atomic.Int32
	msg, returned := run(func(t T) {
		Eventually(t, time.Minute, func() (bool, string) { return calls.Add(1) == 3, "not yet" })
	})
	if !returned || msg != "" || calls.Load() != 3 {
		t.Errorf("returned %v, failure %q, %d calls; want a return after 3 calls", returned, msg, calls.Load())
	}
}

// TestEventuallyFailsWithTheLastWhy: a condition that never holds fails
// the test after the timeout, with the why of the last call.
func TestEventuallyFailsWithTheLastWhy(t *testing.T) {
	var calls atomic.Int32
	start := time.Now()
	msg, returned := run(func(t T) {
		Eventually(t, 20*time.Millisecond, func() (bool, string) { return false, fmt.Sprintf("call %d", calls.Add(1)) })
	})
	if returned || time.Since(start) < 20*time.Millisecond {
		t.Errorf("returned %v after %v; want a failure after the timeout", returned, time.Since(start))
	}
	if want := fmt.Sprintf("still not so after 20ms: call %d", calls.Load()); msg != want {
		t.Errorf("failure %q, want %q", msg, want)
	}
}
