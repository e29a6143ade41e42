package validate

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// metricsFiles are the files that register credproxy's metrics, each in
// the package that changes them: the proxy's (requests, upstream), the
// token cache's (exchanges, renewals, token gauges), the token sink's,
// the credential expiry gauge, and the token hand-out endpoints'.
var metricsFiles = [][]string{{"proxy", "metrics.go"}, {"tokencache", "metrics.go"}, {"tokensink", "metrics.go"},
	{"credexpiry", "metrics.go"}, {"tokenapi", "metrics.go"}}

// registeredMetrics parses metricsFiles and returns the metric names they
// register, with the series names of histograms (_bucket, _sum, _count)
// added.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, p := range metricsFiles {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, filepath.Join(append([]string{"..", ".."}, p...)...), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		addMetricNames(t, f, names)
	}
	if len(names) < 9 {
		t.Fatalf("found only %d metric names in %v: %v", len(names), metricsFiles, names)
	}
	return names
}

// addMetricNames adds the Name of every prometheus.*Opts literal in f.
func addMetricNames(t *testing.T, f *ast.File, names map[string]bool) {
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		sel, ok := lit.Type.(*ast.SelectorExpr)
		if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
			return true
		}
		for _, e := range lit.Elts {
			kv, ok := e.(*ast.KeyValueExpr)
			if !ok || kv.Key.(*ast.Ident).Name != "Name" {
				continue
			}
			bl, ok := kv.Value.(*ast.BasicLit)
			if !ok {
				continue
			}
			name, err := strconv.Unquote(bl.Value)
			if err != nil {
				t.Fatal(err)
			}
			names[name] = true
			if sel.Sel.Name == "HistogramOpts" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[name+s] = true
				}
			}
		}
		return true
	})
}

var (
	credproxyName = regexp.MustCompile(`\bcredproxy_[a-zA-Z0-9_:]+`)
	// A metric selector: a name right before { or [ (label matchers or a
	// range), which is how every series in these queries is written.
	selectorName = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]`)
	quoted       = regexp.MustCompile(`"[^"]*"`)
)

// checkPromQL checks that an expression reads at least one credproxy
// metric and names no metric that credproxy does not register.
func checkPromQL(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	used := credproxyName.FindAllString(expr, -1)
	if len(used) == 0 {
		t.Errorf("%s: %q reads no credproxy metric", where, expr)
	}
	for _, n := range used {
		if !known[n] {
			t.Errorf("%s: %s is not registered in proxy/ or admin/", where, n)
		}
	}
	for _, m := range selectorName.FindAllStringSubmatch(quoted.ReplaceAllString(expr, `""`), -1) {
		if !strings.HasPrefix(m[1], "credproxy_") && !slices.Contains([]string{"by", "without", "on", "ignoring", "group_left", "group_right"}, m[1]) {
			t.Errorf("%s: selects %s, not a credproxy metric", where, m[1])
		}
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
		t.Errorf("%s: unbalanced brackets in %q", where, expr)
	}
}

func TestDashboard(t *testing.T) {
	known := registeredMetrics(t)
	data, err := os.ReadFile(filepath.Join("..", "monitoring", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	}
	var d struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID      int      `json:"id"`
			Title   string   `json:"title"`
			Targets []target `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard lacks a title, uid or panels")
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkPromQL(t, "panel "+p.Title, tg.Expr, known)
			for _, n := range credproxyName.FindAllString(tg.Expr, -1) {
				used[strings.TrimSuffix(n, "_bucket")] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			checkPromQL(t, "variable "+v.Name, v.Definition, known)
		}
	}
	// The dashboard shows the metrics the contract promises.
	for _, n := range []string{
		"credproxy_exchanges_total", "credproxy_exchange_duration_seconds", "credproxy_requests_total",
		"credproxy_upstream_duration_seconds", "credproxy_upstream_401_total", "credproxy_token_expiry_seconds",
		"credproxy_route_ready", "credproxy_forward_connects_total",
	} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

func TestAlertRules(t *testing.T) {
	known := registeredMetrics(t)
	data, err := os.ReadFile(filepath.Join("..", "monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The fields of a Prometheus rule file; strict, so a misspelt key fails.
	type rule struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := strictInto(data, &f); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	byName := map[string]rule{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if _, dup := byName[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			byName[r.Alert] = r
			checkPromQL(t, "alert "+r.Alert, r.Expr, known)
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s: needs a severity label and a summary", r.Alert)
			}
			if r.For == "" {
				t.Errorf("alert %s: no for: duration, it would fire on one scrape", r.Alert)
			}
		}
	}
	for alert, metric := range map[string]string{
		"CredproxyTokenExpiringWithoutRenewal": "credproxy_token_expiry_seconds",
		"CredproxyExchangeFailures":            "credproxy_exchanges_total",
		"CredproxyRouteNotReady":               "credproxy_route_ready",
		"CredproxyCredentialExpiresSoon":       "credproxy_credential_expiry_timestamp_seconds",
	} {
		r, ok := byName[alert]
		if !ok {
			t.Errorf("no alert %s", alert)
		} else if !strings.Contains(r.Expr, metric) {
			t.Errorf("alert %s does not read %s", alert, metric)
		}
	}
	// The yaml library must agree that it is plain YAML too.
	var anyDoc any
	if err := yaml.Unmarshal(data, &anyDoc); err != nil {
		t.Fatal(err)
	}
}
