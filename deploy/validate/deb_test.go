package validate

import (
	"os"
	"path/filepath"
	"strings"
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
		"/usr/share/doc/credproxy/copyright":    {src: "deb/copyright", mode: 0o644},
		checkHelper:                             {src: "systemd/credproxy-check", mode: 0o755},
		// Shipped, not enabled: LISTEN=unix:... is opt-in.
		"/lib/systemd/system/credproxy.socket": {src: "systemd/credproxy.socket", mode: 0o644},
		// A conffile, as every file in /etc.
		"/etc/logrotate.d/credproxy": {src: "deb/logrotate", typ: "config", mode: 0o644},
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

// deb822 splits a Debian control-style file into paragraphs of fields; a
// continuation line (leading space) joins its field's value after a
// newline.
func deb822(t *testing.T, file string) []map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var paras []map[string]string
	for n, block := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		p := map[string]string{}
		last := ""
		for _, line := range strings.Split(block, "\n") {
			if line != "" && (line[0] == ' ' || line[0] == '\t') && last != "" {
				p[last] += "\n" + strings.TrimSpace(line)
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.ContainsAny(k, " \t") {
				t.Fatalf("%s: paragraph %d: %q is not Field: value", file, n+1, line)
			}
			last = k
			p[k] = strings.TrimSpace(v)
		}
		paras = append(paras, p)
	}
	return paras
}

// TestDebCopyright: deploy/deb/copyright is in Debian's machine-readable
// format (copyright-format 1.0): a header naming credproxy, and Files
// paragraphs each with its Copyright and License, every license short
// name with its text (in the paragraph or a stand-alone License
// paragraph, or in /usr/share/common-licenses). That every module linked
// into the binary is named here is .ci/package's to check, with the
// binary in hand.
func TestDebCopyright(t *testing.T) {
	paras := deb822(t, filepath.Join("..", "deb", "copyright"))
	head := paras[0]
	if head["Format"] != "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" || head["Upstream-Name"] != "credproxy" {
		t.Errorf("header paragraph %q: want Format: copyright-format/1.0 and Upstream-Name: credproxy", head)
	}
	texts := map[string]bool{"Apache-2.0": true} // /usr/share/common-licenses/Apache-2.0
	var used []string
	files := 0
	for _, p := range paras[1:] {
		lic, text, _ := strings.Cut(p["License"], "\n")
		switch {
		case lic == "":
			t.Errorf("paragraph %q has no License", p)
		case p["Files"] != "":
			files++
			if p["Copyright"] == "" {
				t.Errorf("Files: %s has no Copyright", p["Files"])
			}
			used = append(used, lic)
		}
		if text != "" {
			texts[lic] = true
		}
	}
	if files == 0 || paras[1]["Files"] != "*" {
		t.Errorf("the first Files paragraph is %q, want Files: * (credproxy itself)", paras[1]["Files"])
	}
	for _, lic := range used {
		if !texts[lic] {
			t.Errorf("License %s has no text", lic)
		}
	}
}
