package main

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

// How exec's signals behave, as a user expects of a wrapper:
//
//   - Ctrl-C, Ctrl-\ and Ctrl-Z in a terminal signal the terminal's whole
//     foreground process group. The command runs in credproxy's group,
//     so it got the signal already: credproxy does not send it again.
//     Go cannot read a signal's sender (siginfo), so the process groups
//     decide: a SIGINT, SIGQUIT or SIGTSTP is taken as the terminal's
//     when credproxy's group is the foreground group of its controlling
//     terminal and the command is in it. A `kill -INT` of credproxy alone
//     from elsewhere, while it runs in a terminal's foreground, is
//     therefore not passed on; a SIGTERM always is.
//   - On SIGTSTP credproxy waits for the command to stop (a full-screen
//     program puts the terminal right first), then stops itself, so that
//     the shell takes the terminal back only then; on SIGCONT (fg, bg)
//     both go on.
//   - Every other signal of forwardedSignals is passed on once.
//   - Before the command starts (while the first tokens are awaited), any
//     of them ends credproxy at once with 128+signal.

// forwardedSignals are passed on to exec's command while it runs, and end
// exec with 128+signal before it starts.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// Waits of the Ctrl-Z handling.
const (
	// childStopWait bounds the wait for the command to stop after a
	// SIGTSTP: one that ignores it leaves credproxy running too.
	childStopWait = 5 * time.Second
	// blindStopWait is the command's time to stop where its state cannot
	// be read (no /proc).
	blindStopWait = 200 * time.Millisecond
	// signalGrace is how long exec waits for a signal that main's context
	// has already seen (both hear SIGINT and SIGTERM) to reach it too.
	signalGrace = 500 * time.Millisecond
)

// execSignals are the signals exec takes from their default actions, from
// its start to its end.
type execSignals struct {
	// ch receives forwardedSignals, and SIGTSTP once the command runs.
	ch chan os.Signal
	// conts receives SIGCONT once the command runs.
	conts chan os.Signal
}

// catchExecSignals takes forwardedSignals: from now on none ends
// credproxy before its command has run, or leaves the command without its
// proxy.
func catchExecSignals() *execSignals {
	s := &execSignals{ch: make(chan os.Signal, 8), conts: make(chan os.Signal, 1)}
	signal.Notify(s.ch, forwardedSignals...)
	return s
}

// catchStops takes SIGTSTP and SIGCONT too, for the command's lifetime.
func (s *execSignals) catchStops() {
	signal.Notify(s.ch, syscall.SIGTSTP)
	signal.Notify(s.conts, syscall.SIGCONT)
}

// stop gives every signal back its default action.
func (s *execSignals) stop() {
	signal.Stop(s.ch)
	signal.Stop(s.conts)
}

// beforeStart is exec's answer to a signal before its command started: it
// ends with 128+signal.
func beforeStart(sig os.Signal) error {
	n := sig.(syscall.Signal)
	return &childExitError{code: 128 + int(n), msg: "exec: " + unix.SignalName(n) + " while waiting for the first tokens; the command was not started"}
}

// pending returns a signal already received, if any.
func (s *execSignals) pending() (os.Signal, bool) {
	select {
	case sig := <-s.ch:
		return sig, true
	default:
		return nil, false
	}
}

// afterCancel is called when main's context ended while exec waited for
// its tokens. main cancels it on SIGINT and SIGTERM, which ch hears too,
// perhaps a moment later: it returns that signal's 128+signal answer, or
// err when no signal comes.
func (s *execSignals) afterCancel(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	select {
	case sig := <-s.ch:
		return beforeStart(sig)
	case <-time.After(signalGrace):
		return err
	}
}

// childRelay passes credproxy's signals on to the running command.
type childRelay struct {
	proc *os.Process
	// done is closed once the command has exited.
	done <-chan struct{}
	sigs *execSignals
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
