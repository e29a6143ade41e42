package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// variantsFor returns the variants of set and the connection counts to
// measure them at: the gomaxprocs set at -conns (1, 32 and 256 by
// default), the others at 1 and 32 unless -conns is given.
func variantsFor(set string, cfg config, cg *cpuCgroup) ([]variant, []int) {
	conns := cfg.conns
	if !cfg.connsSet && set != "gomaxprocs" {
		conns = []int{1, 32}
	}
	switch set {
	case "gomaxprocs":
		return gomaxprocsVariants(cfg, cg), conns
	case "levers":
		return leverVariants(), conns
	case "features":
		return featureVariants(cfg.dir), conns
	}
	return nil, nil
}

// policyVariant is credproxy with GOMAXPROCS unset: its policy
// (internal/rtpolicy) decides, 1 with the bench's loopback listeners.
const policyVariant = "unset: credproxy's policy (every listener on loopback)"

// gomaxprocsVariants: credproxy's policy against set values and Go's
// own default, and under each CPU limit the policy (the base of that
// limit's rows) against what Go alone would pick there.
func gomaxprocsVariants(cfg config, cg *cpuCgroup) []variant {
	ncpu := runtime.NumCPU()
	vs := []variant{
		{name: policyVariant},
		{name: "GOMAXPROCS=1", env: []string{"GOMAXPROCS=1"}},
		{name: fmt.Sprintf("GOMAXPROCS=%d (all cores here)", ncpu), env: []string{"GOMAXPROCS=" + strconv.Itoa(ncpu)}},
		{name: "unset, reverse listener on 0.0.0.0 (policy: Go's default)", wildcard: true},
	}
	if cg == nil {
		return vs
	}
	for _, l := range cfg.limits {
		m, _ := parseMillicores(l)
		policy := "limit " + l + ", unset: credproxy's policy"
		goPick := goDefaultGOMAXPROCS(ncpu, m)
		vs = append(vs,
			variant{name: policy, limit: l, base: policy},
			variant{name: fmt.Sprintf("limit %s, GOMAXPROCS=%d (what Go alone picks)", l, goPick), limit: l,
				env: []string{"GOMAXPROCS=" + strconv.Itoa(goPick)}, base: policy})
	}
	return vs
}

// leverVariants: credproxy's defaults (its GOMAXPROCS policy, GOGC=200
// and GOMEMLIMIT=48MiB unless the environment sets them), Go's default
// GOMAXPROCS, then each runtime lever on top of the defaults.
func leverVariants() []variant {
	ncpu := runtime.NumCPU()
	return []variant{
		{name: "defaults (policy: GOMAXPROCS 1 on loopback; GOGC=200, GOMEMLIMIT=48MiB)"},
		{name: fmt.Sprintf("GOMAXPROCS=%d (Go's default here: all cores)", ncpu), env: []string{"GOMAXPROCS=" + strconv.Itoa(ncpu)}},
		{name: "GODEBUG=asyncpreemptoff=1", env: []string{"GODEBUG=asyncpreemptoff=1"}},
		{name: "GODEBUG=updatemaxprocs=0 (the policy's GOMAXPROCS is not updated anyway)", env: []string{"GODEBUG=updatemaxprocs=0"}},
		{name: "GOGC=400 (instead of 200)", env: []string{"GOGC=400"}},
		{name: "GOGC=off, GOMEMLIMIT=48MiB", env: []string{"GOGC=off", "GOMEMLIMIT=48MiB"}},
	}
}

// The features set's baseline and bare unix socket, the bases of its
// other rows.
const (
	featureBase = "baseline (browser guard on, no Origin sent)"
	unixBase    = "unix socket (Go client)"
)

// featureVariants: each optional feature of the binary on, one at a
// time, with a check that it acted. dir is where its files go.
func featureVariants(dir string) []variant {
	const key = "ck-bench-3f9a1c2e7d"
	const origin = "https://grafana.example.com"
	return []variant{
		{name: featureBase},
		{name: "browser guard, allowed Origin sent (CREDPROXY_ALLOWED_ORIGINS)",
			env: []string{"CREDPROXY_ALLOWED_ORIGINS=" + origin}, header: "Origin: " + origin,
			refuse: &refusal{header: "Origin: https://elsewhere.example.net"}},
		{name: "client keys (CREDPROXY_CLIENT_KEYS_FILE, 100 keys)",
			env: []string{"CREDPROXY_CLIENT_KEYS_FILE=" + filepath.Join(dir, "client-keys")}, header: "Authorization: Bearer " + key,
			files: map[string]string{"client-keys": clientKeys(key, 100)}, budget: 0.05, gate: "keys", refuse: &refusal{}},
		{name: "request policy (CREDPROXY_ALLOW, 3 rules)",
			env:    []string{"CREDPROXY_ALLOW=GET /api/v2/**,POST /api/v2/datapoint,GET /api/v1/*/status"},
			budget: 0.05, gate: "policy", refuse: &refusal{path: "/api/v3/query"}},
		{name: "audit log (CREDPROXY_AUDIT_LOG to a file)",
			env: []string{"CREDPROXY_AUDIT_LOG=" + filepath.Join(dir, "audit.log")}, budget: 0.10, gate: "audit", grows: filepath.Join(dir, "audit.log")},
		{name: unixBase, unix: true, base: unixBase},
		{name: "unix socket, peer identity (CREDPROXY_ALLOW_UIDS, LISTEN_MODE=0666, Go client)", unix: true, base: unixBase,
			env: []string{"CREDPROXY_ALLOW_UIDS=" + strconv.Itoa(os.Getuid()), "CREDPROXY_LISTEN_MODE=0666"}},
	}
}

// clientKeys is a keys file of n keys, key the last.
func clientKeys(key string, n int) string {
	var b strings.Builder
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "client%d:ck-other-%08d\n", i, i)
	}
	fmt.Fprintf(&b, "bench:%s\n", key)
	return b.String()
}
