package main

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinaryRaceChecked: the binary that the whole-process tests and the
// soak drive is built with the race detector, so that they race-check
// credproxy itself and not only the test process.
func TestBinaryRaceChecked(t *testing.T) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return
		}
	}
	t.Errorf("%s is built without -race (build settings %v)", binary, bi.Settings)
}

// failRecorder is a testing.TB that records Errorf instead of failing.
type failRecorder struct {
	testing.TB
	errs []string
}

func (r *failRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *failRecorder) Helper() {}

// TestRaceInChildFailsTest: a race-built program with a data race, run the
// way the tests run credproxy, ends at its first race with exit code 66,
// and its stderr fails the test.
func TestRaceInChildFailsTest(t *testing.T) {
	dir := t.TempDir()
	src := `package main

import "fmt"

func main() {
	n := 0
	done := make(chan bool)
	go func() { n++; done <- true }()
	n++
	<-done
	fmt.Println("not halted", n)
}
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "racy")
	build := exec.Command("go", "build", "-race", "-o", bin, "main.go")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the racy program: %v %s", err, out)
	}
	cmd := command(bin, nil)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 66 || strings.Contains(stdout.String(), "not halted") {
		t.Errorf("racy program: %v, stdout %q; want exit code 66 at the first race", err, stdout.String())
	}
	rec := &failRecorder{TB: t}
	checkNoRace(rec, "racy", stderr.String())
	if len(rec.errs) != 1 || !strings.Contains(rec.errs[0], raceReport) {
		t.Errorf("checkNoRace did not fail on the race report: %q\nstderr: %s", rec.errs, stderr.String())
	}
	clean := &failRecorder{TB: t}
	checkNoRace(clean, "clean", "no race here\n")
	if len(clean.errs) != 0 {
		t.Errorf("checkNoRace failed a clean stderr: %q", clean.errs)
	}
}
