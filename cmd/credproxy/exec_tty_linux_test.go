package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
)

// The terminal tests run `credproxy exec` as a user does: typed into an
// interactive bash on a pseudo-terminal, so that bash's job control puts
// credproxy and its command in a foreground process group of their own,
// and the terminal's line discipline turns Ctrl-C, Ctrl-\ and Ctrl-Z into
// signals to that whole group. Linux only: the pseudo-terminal is opened
// through /dev/ptmx, and process states are read from /proc.

// openPTY opens a pseudo-terminal: the master side, which the test types
// into and reads, and the slave side, the terminal of the shell.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open the pseudo-terminal's slave: %v", err)
	}
	return master, slave
}

// ttyShell is an interactive bash on a pseudo-terminal.
type ttyShell struct {
	t      *testing.T
	master *os.File
	out    *logtest.Capture
	cmd    *exec.Cmd
	// pids are the processes the test learnt of (credproxy, its
	// command), killed at the end if still there.
	pids []int
}

// startShell starts bash -i on a new pseudo-terminal, as the leader of a
// new session whose controlling terminal it is, with env (plus PATH,
// HOME, raceEnv) as its environment.
func startShell(t *testing.T, env map[string]string) *ttyShell {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is required for the terminal tests")
	}
	master, slave := openPTY(t)
	cmd := exec.Command("bash", "--norc", "--noprofile", "-i")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=dumb", "PS1=$ ", raceEnv}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	sh := &ttyShell{t: t, master: master, out: &logtest.Capture{}, cmd: cmd}
	copied := make(chan struct{})
	go func() { defer close(copied); _, _ = io.Copy(sh.out, master) }()
	t.Cleanup(func() {
		for _, pid := range sh.pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		master.Close()
		<-copied
		checkNoRace(t, "credproxy exec in a terminal", sh.out.String())
		if t.Failed() {
			t.Logf("terminal output:\n%s", sh.out)
		}
	})
	return sh
}

// typeIn writes s to the terminal as if typed.
func (sh *ttyShell) typeIn(s string) {
	sh.t.Helper()
	if _, err := io.WriteString(sh.master, s); err != nil {
		sh.t.Fatalf("typing %q: %v", s, err)
	}
}

// waitFor waits until the terminal's output matches re and returns the
// first match's submatches.
func (sh *ttyShell) waitFor(re string, within time.Duration) []string {
	sh.t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if m := rx.FindStringSubmatch(sh.out.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			sh.t.Fatalf("the terminal never showed %q within %v", re, within)
		}
	}
}

// runExec types the command line that runs script under credproxy exec
// (with stop as its argument) and then prints credproxy's exit status; it
// waits for the script's "ready pid=N" and returns the pids of the
// script and of credproxy.
func (sh *ttyShell) runExec(script, stop string) (child, credproxy int) {
	sh.t.Helper()
	// "st""atus" so that the echo of the typed line does not match.
	sh.typeIn(fmt.Sprintf("'%s' exec -- sh '%s' '%s'; echo \"st\"\"atus=$?\"\n", binary, script, stop))
	m := sh.waitFor(`ready pid=(\d+)`, 40*time.Second)
	child, _ = strconv.Atoi(m[1])
	credproxy = parentOf(sh.t, child)
	sh.pids = append(sh.pids, child, credproxy)
	return child, credproxy
}

// procStat returns a process's state letter and its parent, from
// /proc/PID/stat ("T" is stopped).
func procStat(t *testing.T, pid int) (state string, ppid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("process %d: %v", pid, err)
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

func parentOf(t *testing.T, pid int) int {
	_, ppid := procStat(t, pid)
	return ppid
}

// waitState waits until pid's state is (or, with not, is no longer) want.
func waitState(t *testing.T, pid int, want string, not bool, within time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := procStat(t, pid); (st == want) != not {
			return
		}
		if time.Now().After(deadline) {
			st, _ := procStat(t, pid)
			t.Fatalf("process %d in state %s after %v", pid, st, within)
		}
	}
}

// writeScript writes a shell script into a temporary directory and
// returns its path and the path of the file whose creation ends it.
func writeScript(t *testing.T, body string) (script, stop string) {
	t.Helper()
	dir := t.TempDir()
	script, stop = filepath.Join(dir, "child.sh"), filepath.Join(dir, "stop")
	if err := os.WriteFile(script, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return script, stop
}

// TestExecTerminalSignals: in a terminal, each Ctrl-C and Ctrl-\ reaches
// the command once (the terminal signals the whole foreground group,
// credproxy and its command alike, so credproxy must not send it again),
// while `kill <credproxy pid>`, a SIGTERM to credproxy alone, reaches it
// once too; credproxy then exits with the command's code.
func TestExecTerminalSignals(t *testing.T) {
	const apiToken = "execTty-4c21-9ee0"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	sh := startShell(t, execEnv(cspURL, apiToken, echoURL, certFile))
	script, stop := writeScript(t, countingScript)
	_, credproxy := sh.runExec(script, stop)

	pause := func() { time.Sleep(700 * time.Millisecond) }
	sh.typeIn("\x03") // Ctrl-C
	sh.waitFor(`got INT 1`, 10*time.Second)
	pause()
	sh.typeIn("\x03")
	sh.waitFor(`got INT 2`, 10*time.Second)
	pause()
	sh.typeIn("\x1c") // Ctrl-\
	sh.waitFor(`got QUIT 1`, 10*time.Second)
	pause()
	if err := syscall.Kill(credproxy, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sh.waitFor(`got TERM 1`, 10*time.Second)
	pause()
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := sh.waitFor(`counted (INT=\d+ QUIT=\d+ TERM=\d+)`, 10*time.Second)
	if m[1] != "INT=2 QUIT=1 TERM=1" {
		t.Errorf("the command counted %s; want INT=2 QUIT=1 TERM=1 (one per Ctrl-C, Ctrl-\\ and kill)", m[1])
	}
	if st := sh.waitFor(`status=(\d+)`, 20*time.Second); st[1] != "0" {
		t.Errorf("credproxy exited %s, want the command's 0", st[1])
	}
}

// tstpScript behaves as a full-screen program does on Ctrl-Z: it traps
// SIGTSTP, puts the terminal right (here: says so and takes 300 ms), and
// only then stops itself.
const tstpScript = `trap 'echo "tstp: cleaning up"; sleep 0.3; echo "tstp: stopping"; kill -STOP $$' TSTP
echo "ready pid=$$"
while [ ! -e "$1" ]; do sleep 0.05 & wait $!; done
echo "finished after fg"
`

// TestExecTerminalCtrlZ: Ctrl-Z stops credproxy once its command has
// stopped, not before: the shell takes the terminal back ("Stopped")
// only after the command has put it right. fg continues both, and the
// command runs to its end.
func TestExecTerminalCtrlZ(t *testing.T) {
	const apiToken = "execTstp-0d9a-61bf"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	sh := startShell(t, execEnv(cspURL, apiToken, echoURL, certFile))
	script, stop := writeScript(t, tstpScript)
	child, credproxy := sh.runExec(script, stop)

	sh.typeIn("\x1a") // Ctrl-Z
	sh.waitFor(`Stopped`, 15*time.Second)
	out := sh.out.String()
	if s, c := strings.Index(out, "Stopped"), strings.Index(out, "tstp: stopping"); c < 0 || s < c {
		t.Errorf("the shell reported the job stopped before the command had stopped:\n%s", out)
	}
	waitState(t, child, "T", false, 5*time.Second)
	waitState(t, credproxy, "T", false, 5*time.Second)

	sh.typeIn("fg\n")
	waitState(t, child, "T", true, 5*time.Second)
	waitState(t, credproxy, "T", true, 5*time.Second)
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sh.waitFor(`finished after fg`, 10*time.Second)
	// The typed line's "; echo" ran when the job stopped (bash reports
	// 128+SIGTSTP); fg returns the exit status.
	sh.typeIn("echo \"fg\"\"status=$?\"\n")
	if st := sh.waitFor(`fgstatus=(\d+)`, 20*time.Second); st[1] != "0" {
		t.Errorf("credproxy exited %s after fg, want the command's 0", st[1])
	}
}

// TestExecBackgroundStop: `credproxy exec ... &` in an interactive shell
// is a job of its own, not the terminal's foreground: a `kill -TSTP` of
// credproxy is passed on, credproxy stops once its command has, and a
// `kill -CONT` of credproxy alone continues both.
func TestExecBackgroundStop(t *testing.T) {
	const apiToken = "execBgStop-2e7c-d0a8"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	sh := startShell(t, execEnv(cspURL, apiToken, echoURL, certFile))
	script, stop := writeScript(t, countingScript)
	sh.typeIn(fmt.Sprintf("'%s' exec -- sh '%s' '%s' &\n", binary, script, stop))
	m := sh.waitFor(`ready pid=(\d+)`, 40*time.Second)
	child, _ := strconv.Atoi(m[1])
	credproxy := parentOf(t, child)
	sh.pids = append(sh.pids, child, credproxy)

	if err := syscall.Kill(credproxy, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	waitState(t, child, "T", false, 10*time.Second)
	waitState(t, credproxy, "T", false, 10*time.Second)
	if err := syscall.Kill(credproxy, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState(t, credproxy, "T", true, 10*time.Second)
	waitState(t, child, "T", true, 10*time.Second)
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sh.waitFor(`counted INT=0 QUIT=0 TERM=0`, 10*time.Second)
}

// TestExecForwardsInterruptWithoutTerminal: with no terminal (a service
// manager, CI, another program running exec), a SIGINT to credproxy is
// its sender's, not a terminal's: it reaches the command, once.
func TestExecForwardsInterruptWithoutTerminal(t *testing.T) {
	const apiToken = "execNoTty-8a3e-44f1"
	_, cspURL, _, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	stop := filepath.Join(t.TempDir(), "stop")
	p := command(binary, withPath(execEnv(cspURL, apiToken, echoURL, certFile)), "exec", "--", "sh", "-c", countingScript, "sh", stop)
	// A session of its own: no controlling terminal, even when the test
	// runs in one.
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var out, errOut logtest.Capture
	p.Stdout, p.Stderr = &out, &errOut
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait() }()
	t.Cleanup(func() {
		// The whole group: the command holds the output pipes too.
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		<-done
		checkNoRace(t, "credproxy exec", errOut.String())
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("the command never started; stderr: %s", errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := p.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "got INT 1") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)

	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("credproxy exec: %v; stderr: %s", err, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("credproxy exec did not end with its command")
	}
	if !strings.Contains(out.String(), "counted INT=1 QUIT=0 TERM=0") {
		t.Errorf("the command's counts: %q, want one SIGINT", out.String())
	}
}
