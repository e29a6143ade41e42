// Package jobcontrol is a wrapper's terminal job control: what a program
// that runs one command in its own process group, as credproxy exec does,
// must do with signals so that the pair behaves as the command alone
// would for the user at the terminal and for whoever sends signals.
//
// It catches the signals (Catch), relays them to the running command
// (Signals.Relay) without sending a second copy of what the terminal
// already sent the whole foreground group, stops and continues together
// with the command on Ctrl-Z, fg and bg, and reads process groups and
// process states to tell those cases apart.
//
// Why a package of its own, apart from internal/execrun: the rules here
// are POSIX job control, the same for any wrapper whatever it runs and
// whatever it serves; execrun is credproxy's (the proxy, the CA files,
// the child's environment). Each can be read, and tested, without the
// other. execrun decides what a signal before the command started means
// (its exit code); this package only reports it.
//
// How signals behave, as a user expects of a wrapper (credproxy exec):
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
//   - Every other signal of Forwarded is passed on once.
//   - Before the command starts (exec: while the first tokens are
//     awaited), any of them is the wrapper's to answer (Received,
//     Pending, AfterCancel): exec ends at once with 128+signal.
//
// The package is for Linux, as credproxy is: /proc/PID/stat, TIOCGPGRP.
package jobcontrol
