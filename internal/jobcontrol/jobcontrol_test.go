package jobcontrol

import (
	"context"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestProcessStates: a child in credproxy's process group is seen
// running, then stopped after SIGSTOP (waitStopped returns once it is),
// then running again after SIGCONT; waitStopped gives up at once for a
// child that has exited.
func TestProcessStates(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	pid := cmd.Process.Pid

	if !sameGroup(pid) {
		t.Error("a child started without Setpgid is not in our process group")
	}
	if stopped, known := processStopped(pid); !known || stopped {
		t.Fatalf("running child: stopped %v, known %v", stopped, known)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !waitStopped(pid, done) {
		t.Fatal("waitStopped: the child did not stop")
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if stopped, _ := processStopped(pid); !stopped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child is still stopped after SIGCONT")
		}
	}
	_ = cmd.Process.Kill()
	<-done
	start := time.Now()
	if waitStopped(pid, done) {
		t.Error("waitStopped: an exited child counted as stopped")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("waitStopped took %v for an exited child", d)
	}
}

// TestAfterCancel: no signal is waited for while the context lives; once
// it has ended, one that arrives within the grace is returned.
func TestAfterCancel(t *testing.T) {
	s := &Signals{ch: make(chan os.Signal, 1)}
	if _, ok := s.AfterCancel(t.Context()); ok {
		t.Error("a signal while the context lives")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s.ch <- syscall.SIGTERM
	if sig, ok := s.AfterCancel(ctx); !ok || sig != syscall.SIGTERM {
		t.Errorf("AfterCancel = %v, %v; want SIGTERM", sig, ok)
	}
	if _, ok := s.Pending(); ok {
		t.Error("the signal was delivered twice")
	}
}
