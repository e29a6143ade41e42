package validate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/goreleaser/nfpm/v2"
)

// TestDebPackageConfig reads deploy/nfpm.yaml with nfpm's own parser and
// checks that the package installs what the unit refers to, where it
// refers to it: the binary, the environment file as a conffile, the
// secrets directory root's only. .ci/package checks the built package.
func TestDebPackageConfig(t *testing.T) {
	env := map[string]string{"GOARCH": "amd64", "VERSION": "1.2.3", "CREDPROXY_BINARY": "../bin/credproxy"}
	cfg, err := nfpm.ParseFileWithEnvMapping("../nfpm.yaml", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		t.Fatal(err)
	}
	if err := nfpm.Validate(info); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		src, typ string
		mode     os.FileMode
	}
	got := map[string]entry{}
	for _, c := range info.Contents {
		var mode os.FileMode
		if c.FileInfo != nil {
			mode = c.FileInfo.Mode
		}
		got[c.Destination] = entry{src: c.Source, typ: c.Type, mode: mode}
	}
	want := map[string]entry{
		unitBinary:                              {src: "../bin/credproxy", mode: 0o755},
		"/lib/systemd/system/credproxy.service": {src: "systemd/credproxy.service", mode: 0o644},
		unitEnvFile:                             {src: "systemd/credproxy.env", typ: "config", mode: 0o640},
		"/etc/credproxy":                        {typ: "dir", mode: 0o755},
		secretsDir:                              {typ: "dir", mode: 0o700},
		"/usr/share/doc/credproxy/vm.md":        {src: "../docs/operators/vm.md", mode: 0o644},
	}
	for dst, w := range want {
		if g, ok := got[dst]; !ok || g != w {
			t.Errorf("%s: packaged as %+v, want %+v", dst, g, w)
		}
	}
	for dst := range got {
		if _, ok := want[dst]; !ok {
			t.Errorf("%s is packaged but not checked here", dst)
		}
	}
	for _, s := range []string{info.Scripts.PostInstall, info.Scripts.PreRemove, info.Scripts.PostRemove} {
		st, err := os.Stat(filepath.Join("..", s))
		if err != nil {
			t.Error(err)
		} else if st.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s is mode %v, want 0755", s, st.Mode().Perm())
		}
	}
}
