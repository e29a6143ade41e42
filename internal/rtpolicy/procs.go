package rtpolicy

import (
	"bufio"
	"bytes"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
)

// The GOMAXPROCS policy, measured with `go run ./bench -gomaxprocs`
// (bench/README.md, "GOMAXPROCS"). A sidecar carries one app's calls, a
// few at a time: with one P its CPU per request at one connection was
// 20-27% lower than with two, and under a 500m or 100m CPU limit it
// served 1.4x the requests, because the Go scheduler's idle spinning on a
// second P costs more than credproxy's own work and is throttled by the
// quota. Go's own container-aware default never picks fewer than 2 Ps
// (runtime/cgroup_linux.go: max(ceil(limit), 2)), so a 100m sidecar gets
// two. A gateway, whose listeners face the network, keeps every core: one
// P cost it 0.62-0.75x of its peak throughput at 32-256 connections.
//
// The rule, in order:
//  1. GOMAXPROCS in the environment always wins (the runtime read it).
//  2. A CPU limit of one core or less (cgroup cpu.max or CFS quota): 1.
//  3. Every listener on loopback or a unix socket (a sidecar): 1.
//  4. Otherwise Go's default (every core, or its container-aware limit).

// ProcsApplied is what ApplyProcs decided.
type ProcsApplied struct {
	// Procs is the GOMAXPROCS set; zero when it was left to Go.
	Procs int
	// Why says which rule decided, for the start-up log line.
	Why string
}

// Sidecar reports whether every listener address is on loopback or a
// unix socket: then only processes of this machine (or pod) reach
// credproxy, and it carries one app's calls. An empty address (a listener
// that is off) does not count.
func Sidecar(addrs ...string) bool {
	for _, a := range addrs {
		switch {
		case a == "" || strings.HasPrefix(a, "unix:"):
			continue
		}
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return false
		}
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// ApplyProcs applies the GOMAXPROCS policy to this process: sidecar is
// Sidecar's answer for the configured listeners, cpuLimit the process's
// CPU limit in cores (CPULimit; ok false when there is none).
func ApplyProcs(env map[string]string, sidecar bool, cpuLimit float64, limited bool) ProcsApplied {
	if _, set := env["GOMAXPROCS"]; set {
		return ProcsApplied{Why: "from GOMAXPROCS"}
	}
	switch {
	case limited && cpuLimit <= 1:
		runtime.GOMAXPROCS(1)
		return ProcsApplied{Procs: 1, Why: "a CPU limit of one core or less"}
	case sidecar:
		runtime.GOMAXPROCS(1)
		return ProcsApplied{Procs: 1, Why: "every listener on loopback or a unix socket (a sidecar)"}
	}
	return ProcsApplied{Why: "Go's default: a listener faces the network (a gateway)"}
}

// CPULimit reads this process's CPU limit in cores from its cgroup
// (v2 cpu.max, or v1 cpu.cfs_quota_us and cpu.cfs_period_us), as the Go
// runtime does; ok is false when there is none or it cannot be read.
func CPULimit() (cores float64, ok bool) { return cpuLimit(os.DirFS("/")) }

// cpuLimit is CPULimit on the file system root, for tests.
func cpuLimit(root fs.FS) (float64, bool) {
	self, err := fs.ReadFile(root, "proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(self))
	for sc.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		dir := strings.TrimPrefix(parts[2], "/")
		switch {
		case parts[0] == "0" && parts[1] == "":
			if c, ok := v2Limit(root, path.Join("sys/fs/cgroup", dir)); ok {
				return c, true
			}
		case hasController(parts[1], "cpu"):
			for _, mount := range []string{"sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu"} {
				if c, ok := v1Limit(root, path.Join(mount, dir)); ok {
					return c, true
				}
			}
		}
	}
	return 0, false
}

// v2Limit reads cpu.max ("max 100000" or "50000 100000").
func v2Limit(root fs.FS, dir string) (float64, bool) {
	b, err := fs.ReadFile(root, path.Join(dir, "cpu.max"))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return 0, false
	}
	return ratio(f[0], f[1])
}

// v1Limit reads cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us.
func v1Limit(root fs.FS, dir string) (float64, bool) {
	q, err := fs.ReadFile(root, path.Join(dir, "cpu.cfs_quota_us"))
	if err != nil {
		return 0, false
	}
	p, err := fs.ReadFile(root, path.Join(dir, "cpu.cfs_period_us"))
	if err != nil {
		return 0, false
	}
	return ratio(strings.TrimSpace(string(q)), strings.TrimSpace(string(p)))
}

func ratio(quota, period string) (float64, bool) {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 || math.IsInf(q/p, 0) {
		return 0, false
	}
	return q / p, true
}

func hasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
