package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCompose decodes the compose file strictly into the compose fields it
// uses and checks that the app shares credproxy's loopback, the secret
// comes from a file, and credproxy runs hardened.
func TestCompose(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "compose", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type service struct {
		Image       string            `json:"image"`
		Command     []string          `json:"command"`
		Entrypoint  []string          `json:"entrypoint"`
		Environment map[string]string `json:"environment"`
		Secrets     []string          `json:"secrets"`
		ReadOnly    bool              `json:"read_only"`
		CapDrop     []string          `json:"cap_drop"`
		SecurityOpt []string          `json:"security_opt"`
		User        string            `json:"user"`
		Restart     string            `json:"restart"`
		NetworkMode string            `json:"network_mode"`
		DependsOn   []string          `json:"depends_on"`
	}
	var f struct {
		Services map[string]service `json:"services"`
		Secrets  map[string]struct {
			File string `json:"file"`
		} `json:"secrets"`
	}
	if err := strictInto(data, &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	cp, ok := f.Services["credproxy"]
	if !ok {
		t.Fatal("no credproxy service")
	}
	if !imageRef.MatchString(cp.Image) {
		t.Errorf("image %q is not ghcr.io/credproxy/credproxy:vX.Y.Z", cp.Image)
	}
	routes, errs := checkEnv(cp.Environment)
	report(t, errs)
	for _, r := range routes {
		for k, v := range r.vars {
			if strings.HasSuffix(k, "_FILE") {
				name := strings.TrimPrefix(v, "/run/secrets/")
				if _, ok := f.Secrets[name]; !ok || !slices.Contains(cp.Secrets, name) {
					t.Errorf("%s=%s is not a compose secret given to credproxy", k, v)
				}
			}
		}
	}
	if !cp.ReadOnly || !slices.Contains(cp.CapDrop, "ALL") || cp.User != "65532:65532" {
		t.Error("credproxy should run read-only, with all capabilities dropped, as 65532")
	}
	app, ok := f.Services["app"]
	if !ok {
		t.Fatal("no app service")
	}
	if app.NetworkMode != "service:credproxy" {
		t.Errorf("app network_mode %q: it must share credproxy's loopback", app.NetworkMode)
	}
	for k := range app.Environment {
		if strings.HasPrefix(k, "CREDPROXY_") {
			t.Errorf("app sets %s: the app needs no credential settings", k)
		}
	}
}
