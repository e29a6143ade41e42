//go:build race

package fleet

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestFleetSimulationsWithoutRace runs the fleet simulations (sim_test.go)
// in a test binary of this package built without -race: the race runtime
// crashes now and then on their synctest bubbles (golang/go#78156), and
// the simulations are deterministic, so their verdict is the same with or
// without the detector. The caches they run are race-tested in
// tokencache. This keeps `go test -race ./...` a run of every test.
func TestFleetSimulationsWithoutRace(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := []string{"test", "-count=1", "-run=^TestFleet", "-v", "."}
	if *routesFlag > 0 {
		args = append(args, "-args", "-fleet.routes="+strconv.Itoa(*routesFlag))
	}
	cmd := exec.CommandContext(t.Context(), gobin, args...)
	// GOFLAGS could carry -race back in.
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test without -race: %v\n%s", err, out)
	}
	// A pattern or build tag gone wrong runs nothing and passes.
	for _, name := range []string{"TestFleetOutageContract", "TestFleetRollout", "TestFleetRestarts"} {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("go test without -race did not pass %s:\n%s", name, out)
		}
	}
	t.Logf("%s", out)
}
