package rtpolicy

import (
	"runtime"
	"testing"
	"testing/fstest"
)

// TestSidecar: loopback and unix listeners make a sidecar; one listener
// facing the network makes a gateway.
func TestSidecar(t *testing.T) {
	tcs := []struct {
		desc  string
		addrs []string
		want  bool
	}{
		{"defaults", []string{"127.0.0.1:8080", "127.0.0.1:9901"}, true},
		{"IPv6 loopback and localhost", []string{"[::1]:8080", "localhost:9901"}, true},
		{"unix sockets, admin off", []string{"unix:/run/credproxy/api.sock", ""}, true},
		{"a gateway", []string{"0.0.0.0:8080", "127.0.0.1:9901"}, false},
		{"a pod address", []string{"10.1.2.3:8080"}, false},
		{"a name", []string{"credproxy.internal:8080"}, false},
	}
	for _, tc := range tcs {
		if got := Sidecar(tc.addrs...); got != tc.want {
			t.Errorf("%s: Sidecar(%q) = %v, want %v", tc.desc, tc.addrs, got, tc.want)
		}
	}
}

// TestApplyProcs: the environment wins, then a limit of a core or less,
// then a sidecar's one P; a gateway keeps Go's default.
func TestApplyProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	tcs := []struct {
		desc    string
		env     map[string]string
		sidecar bool
		limit   float64
		limited bool
		want    int
	}{
		{"GOMAXPROCS set", map[string]string{"GOMAXPROCS": "4"}, true, 0.1, true, 0},
		{"100m limit, gateway", nil, false, 0.1, true, 1},
		{"1000m limit", nil, false, 1, true, 1},
		{"sidecar, no limit", nil, true, 0, false, 1},
		{"sidecar, 2 cores", nil, true, 2, true, 1},
		{"gateway, 2500m", nil, false, 2.5, true, 0},
		{"gateway, no limit", nil, false, 0, false, 0},
	}
	for _, tc := range tcs {
		runtime.GOMAXPROCS(before)
		got := ApplyProcs(tc.env, tc.sidecar, tc.limit, tc.limited)
		if got.Procs != tc.want || got.Why == "" {
			t.Errorf("%s: %+v, want Procs %d and a reason", tc.desc, got, tc.want)
		}
		if tc.want == 1 && runtime.GOMAXPROCS(0) != 1 {
			t.Errorf("%s: GOMAXPROCS is %d, want 1", tc.desc, runtime.GOMAXPROCS(0))
		}
	}
}

// TestCPULimit reads cgroup v2 and v1 limits as the Go runtime does.
func TestCPULimit(t *testing.T) {
	tcs := []struct {
		desc string
		fs   fstest.MapFS
		want float64
		ok   bool
	}{
		{"v2 500m", fstest.MapFS{
			"proc/self/cgroup":                       {Data: []byte("0::/kubepods/pod1/c1\n")},
			"sys/fs/cgroup/kubepods/pod1/c1/cpu.max": {Data: []byte("50000 100000\n")},
		}, 0.5, true},
		{"v2 no limit", fstest.MapFS{
			"proc/self/cgroup":      {Data: []byte("0::/\n")},
			"sys/fs/cgroup/cpu.max": {Data: []byte("max 100000\n")},
		}, 0, false},
		{"v1 100m", fstest.MapFS{
			"proc/self/cgroup": {Data: []byte("12:memory:/x\n4:cpu,cpuacct:/docker/abc\n")},
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us":  {Data: []byte("10000\n")},
			"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": {Data: []byte("100000\n")},
		}, 0.1, true},
		{"v1 unlimited", fstest.MapFS{
			"proc/self/cgroup":                            {Data: []byte("4:cpu,cpuacct:/\n")},
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us":  {Data: []byte("-1\n")},
			"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": {Data: []byte("100000\n")},
		}, 0, false},
		{"no cgroup file", fstest.MapFS{}, 0, false},
	}
	for _, tc := range tcs {
		got, ok := cpuLimit(tc.fs)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %v %v, want %v %v", tc.desc, got, ok, tc.want, tc.ok)
		}
	}
}
