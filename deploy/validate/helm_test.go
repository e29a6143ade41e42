package validate

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

var chartDir = filepath.Join("..", "helm", "credproxy")

// render renders the chart offline with helm's own engine, as
// `helm template` does, and decodes every manifest strictly.
func render(t *testing.T, ch *chart.Chart, valuesFile string) *objects {
	t.Helper()
	vals := map[string]any{}
	if valuesFile != "" {
		v, err := chartutil.ReadValuesFile(valuesFile)
		if err != nil {
			t.Fatal(err)
		}
		vals = v
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, vals); err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{
		Name: "credproxy", Namespace: "credproxy", Revision: 1, IsInstall: true,
	}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	out, err := engine.Render(ch, rv)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var all strings.Builder
	for _, n := range names {
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		all.WriteString("---\n# " + n + "\n" + out[n] + "\n")
	}
	o, err := decode("rendered chart", []byte(all.String()))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestChartRendersGateway(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(); err != nil {
		t.Fatal(err)
	}
	if !imageRef.MatchString("ghcr.io/credproxy/credproxy:" + ch.Metadata.AppVersion) {
		t.Errorf("appVersion %q does not make an image reference like the manifests'", ch.Metadata.AppVersion)
	}
	examples, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range append([]string{""}, examples...) {
		name := "default values"
		if f != "" {
			name = filepath.Base(f)
		}
		if name == unixSocketExample {
			continue // not a gateway: TestChartUnixSocket
		}
		t.Run(name, func(t *testing.T) {
			o := render(t, ch, f)
			routes, errs := checkGateway(o, "apps")
			report(t, errs)
			for _, r := range routes {
				kinds[r.vars["AUTH"]] = true
			}
			if len(o.accounts) != 1 || o.deployments[0].Spec.Template.Spec.ServiceAccountName != o.accounts[0].Name {
				t.Error("the pods do not run as the chart's ServiceAccount")
			}
		})
	}
	var missing []string
	for k := range kindNeeds {
		if !kinds[k] {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("no example values for credential kinds %q", missing)
	}
}

// unixSocketExample is the example values file of listen.unixSocket.
const unixSocketExample = "unix-socket.yaml"

// TestChartUnixSocket: with listen.unixSocket the chart renders what
// deploy/kubernetes/sidecar-unix-socket.yaml shows: credproxy a native
// sidecar listening on unix sockets in an emptyDir that only it and
// extraContainers mount (checkNativeSidecar, checkSharedSocket), no
// route port on the Service, and no NetworkPolicy rule that admits
// clients (a rule without ports would admit every port).
func TestChartUnixSocket(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	o := render(t, ch, filepath.Join(chartDir, "examples", unixSocketExample))
	if len(o.deployments) != 1 || len(o.services) != 1 || len(o.policies) != 1 {
		t.Fatalf("%d Deployments, %d Services, %d NetworkPolicies, want 1 each", len(o.deployments), len(o.services), len(o.policies))
	}
	routes, errs := checkNativeSidecar(o.deployments[0].Spec.Template.Spec)
	report(t, errs)
	if len(routes) != 1 || routes[0].vars["LISTEN"] != "unix:/run/credproxy/wavefront.sock" || routes[0].vars["ALLOW_UIDS"] != "10001" {
		t.Errorf("routes %v: want wavefront on unix:/run/credproxy/wavefront.sock, ALLOW_UIDS 10001", routes)
	}
	for _, p := range o.services[0].Spec.Ports {
		if p.Name != "admin" {
			t.Errorf("the Service exposes %s (%d): a route on a unix socket has no port", p.Name, p.Port)
		}
	}
	for _, rule := range o.policies[0].Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Error("a NetworkPolicy rule without ports admits every port")
		}
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.IntValue() != 9901 {
				t.Errorf("the NetworkPolicy admits port %v: only the admin port is served", p.Port)
			}
		}
	}
	// Without containers to call them, the sockets serve nobody.
	vals := map[string]any{"listen": map[string]any{"unixSocket": map[string]any{"enabled": true}}}
	rv, err := chartutil.ToRenderValues(ch, vals, chartutil.ReleaseOptions{Name: "x", Namespace: "x"}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, rv); err == nil || !strings.Contains(err.Error(), "extraContainers") {
		t.Errorf("unixSocket without extraContainers: %v, want an error naming extraContainers", err)
	}
}

// The chart's values.schema.json refuses misspelt or misplaced values,
// which helm would otherwise ignore.
func TestChartSchemaRejectsTypos(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		vals map[string]any
	}{
		{"unknown top-level key", map[string]any{"replicas": 3}},
		{"misspelt route key", map[string]any{"routes": []any{map[string]any{"name": "api", "auth": "static", "port": 8080, "secretfiles": map[string]any{}}}}},
		{"unknown credential kind", map[string]any{"routes": []any{map[string]any{"name": "api", "auth": "oauth2", "port": 8080}}}},
		{"plain http upstream", map[string]any{"routes": []any{map[string]any{"name": "api", "auth": "static", "port": 8080, "upstream": "http://api.example.com"}}}},
		{"a single replica", map[string]any{"replicaCount": 1}},
		{"misspelt unixSocket key", map[string]any{"listen": map[string]any{"unixSocket": map[string]any{"enable": true}}}},
		{"socket mode not octal", map[string]any{"listen": map[string]any{"unixSocket": map[string]any{"mode": "660o"}}}},
	} {
		if _, err := chartutil.ToRenderValues(ch, tc.vals, chartutil.ReleaseOptions{Name: "x", Namespace: "x"}, chartutil.DefaultCapabilities); err == nil {
			t.Errorf("%s: values accepted", tc.desc)
		}
	}
}

func TestChartRejectsNoRoutes(t *testing.T) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(ch, map[string]any{"routes": []any{}}, chartutil.ReleaseOptions{Name: "x", Namespace: "x"}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Render(ch, rv); err == nil || !strings.Contains(err.Error(), "at least one route") {
		t.Errorf("render with no routes: %v, want an error naming routes", err)
	}
}
