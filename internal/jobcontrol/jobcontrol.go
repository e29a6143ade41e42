package jobcontrol

import (
	"context"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Forwarded are the signals Catch takes: passed on to the command while
// it runs; before it starts, the wrapper's to answer (exec ends with
// 128+signal).
func Forwarded() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
}

// Waits of the Ctrl-Z handling.
const (
	// childStopWait bounds the wait for the command to stop after a
	// SIGTSTP: one that ignores it leaves credproxy running too.
	childStopWait = 5 * time.Second
	// blindStopWait is the command's time to stop where its state cannot
	// be read (no /proc).
	blindStopWait = 200 * time.Millisecond
	// signalGrace is how long AfterCancel waits for a signal that the
	// caller's context has already seen (both hear SIGINT and SIGTERM) to
	// reach the Signals too.
	signalGrace = 500 * time.Millisecond
)

// Signals are the signals a wrapper takes from their default actions,
// from Catch to Stop. One goroutine reads them: the wrapper's.
type Signals struct {
	// ch receives Forwarded, and SIGTSTP once CatchStops was called.
	ch chan os.Signal
	// conts receives SIGCONT once CatchStops was called.
	conts chan os.Signal
}

// Catch takes Forwarded: from now on none ends the wrapper before its
// command has run, or leaves the command without what the wrapper gives
// it (exec's proxy).
func Catch() *Signals {
	s := &Signals{ch: make(chan os.Signal, 8), conts: make(chan os.Signal, 1)}
	signal.Notify(s.ch, Forwarded()...)
	return s
}

// Received delivers the signals caught, for a wrapper waiting before its
// command starts.
func (s *Signals) Received() <-chan os.Signal { return s.ch }

// CatchStops takes SIGTSTP and SIGCONT too, for the command's lifetime:
// call it just before the command starts.
func (s *Signals) CatchStops() {
	signal.Notify(s.ch, syscall.SIGTSTP)
	signal.Notify(s.conts, syscall.SIGCONT)
}

// Stop gives every signal back its default action.
func (s *Signals) Stop() {
	signal.Stop(s.ch)
	signal.Stop(s.conts)
}

// Pending returns a signal already received, if any.
func (s *Signals) Pending() (os.Signal, bool) {
	select {
	case sig := <-s.ch:
		return sig, true
	default:
		return nil, false
	}
}

// AfterCancel is for when ctx, the caller's, has ended while the wrapper
// waited before starting its command. The caller cancels ctx on SIGINT
// and SIGTERM (main's context), which Signals hear too, perhaps a moment
// later: it returns that signal, waiting up to signalGrace, or false when
// none comes (or ctx has not ended).
func (s *Signals) AfterCancel(ctx context.Context) (os.Signal, bool) {
	if ctx.Err() == nil {
		return nil, false
	}
	select {
	case sig := <-s.ch:
		return sig, true
	case <-time.After(signalGrace):
		return nil, false
	}
}

// Relay passes the signals received on to proc, the running command
// (see the package comment for how), until done is closed: the command
// has exited. Call CatchStops before the command starts.
func (s *Signals) Relay(proc *os.Process, done <-chan struct{}, log *zap.Logger) {
	r := &childRelay{proc: proc, done: done, sigs: s, log: log}
	for {
		select {
		case sig := <-s.ch:
			r.relay(sig)
		case <-s.conts:
			r.resumed()
		case <-done:
			return
		}
	}
}

// childRelay passes the wrapper's signals on to the running command.
type childRelay struct {
	proc *os.Process
	// done is closed once the command has exited.
	done <-chan struct{}
	sigs *Signals
	log  *zap.Logger
}

// relay handles one signal credproxy received while the command runs.
func (r *childRelay) relay(sig os.Signal) {
	switch sig {
	case syscall.SIGTSTP:
		r.stopTogether()
	case syscall.SIGINT, syscall.SIGQUIT:
		if terminalSignalsReach(r.proc.Pid) {
			r.log.Debug("exec: not passed on: the terminal sent it to the command too", zap.Stringer("signal", sig))
			return
		}
		_ = r.proc.Signal(sig)
	default:
		_ = r.proc.Signal(sig)
	}
}

// resumed handles a SIGCONT: a command still stopped gets one too. A
// shell's fg or bg continues the whole process group, the command
// included, before credproxy runs again; a `kill -CONT` of credproxy
// alone does not. Where the command's state cannot be read, one outside
// credproxy's group gets it.
func (r *childRelay) resumed() {
	stopped, known := processStopped(r.proc.Pid)
	if stopped || !known && !sameGroup(r.proc.Pid) {
		_ = r.proc.Signal(syscall.SIGCONT)
	}
}

// stopTogether is Ctrl-Z: the command is stopped (by the terminal, or by
// a SIGTSTP from credproxy when the terminal's did not reach it), then
// credproxy stops itself, and both go on at the next SIGCONT. If the
// command does not stop, credproxy does not either.
func (r *childRelay) stopTogether() {
	pid := r.proc.Pid
	if !terminalSignalsReach(pid) {
		_ = r.proc.Signal(syscall.SIGTSTP)
	}
	if !waitStopped(pid, r.done) {
		r.log.Info("exec: the command did not stop on SIGTSTP; credproxy goes on running too")
		return
	}
	select {
	case <-r.sigs.conts: // a stale one, from before this stop
	default:
	}
	// SIGSTOP, which cannot be caught: credproxy stops as a whole, and
	// its parent (the shell) sees it stopped.
	_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	select {
	case <-r.sigs.conts:
	case <-r.done:
	}
	r.resumed()
}

// terminalSignalsReach reports whether the terminal's signals (Ctrl-C,
// Ctrl-\, Ctrl-Z) reach process pid as they reach credproxy: credproxy's
// process group is the foreground group of its controlling terminal, and
// pid is in that group.
func terminalSignalsReach(pid int) bool {
	if !sameGroup(pid) {
		return false
	}
	fd, err := unix.Open("/dev/tty", unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false // no controlling terminal
	}
	defer unix.Close(fd)
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && fg == unix.Getpgrp()
}

// sameGroup reports whether pid is in credproxy's process group.
func sameGroup(pid int) bool {
	pg, err := unix.Getpgid(pid)
	return err == nil && pg == unix.Getpgrp()
}

// waitStopped waits up to childStopWait for process pid to stop, and
// reports whether it did; it gives up at once when done is closed (the
// process exited).
func waitStopped(pid int, done <-chan struct{}) bool {
	deadline := time.Now().Add(childStopWait)
	for {
		stopped, known := processStopped(pid)
		if !known {
			select {
			case <-done:
				return false
			case <-time.After(blindStopWait):
				return true
			}
		}
		if stopped || time.Now().After(deadline) {
			return stopped
		}
		select {
		case <-done:
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// processStopped reads whether process pid is stopped from
// /proc/PID/stat; known is false where that cannot be read.
func processStopped(pid int) (stopped, known bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false, false
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return false, false
	}
	return f[0] == "T" || f[0] == "t", true
}
