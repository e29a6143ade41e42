package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func load(t *testing.T, name string) *objects {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "kubernetes", name))
	if err != nil {
		t.Fatal(err)
	}
	o, err := decode(name, data)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func report(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		t.Error(err)
	}
}

// Every file in deploy/kubernetes is covered by a test below.
func TestEveryManifestIsChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "kubernetes", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := []string{"gateway.yaml", "job.yaml", "sidecar-unix-socket.yaml", "sidecar.yaml", "workload-identity.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("deploy/kubernetes holds %q, the tests check %q", names, want)
	}
}

func TestStrictDecodingRejectsTypos(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "kubernetes", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ desc, from, to string }{
		{"misspelt field", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:"},
		{"wrong type", "replicas: 1", "replicas: one"},
		{"field at the wrong level", "      automountServiceAccountToken: false", "      automountServiceAccountToken: false\n      restartPolicy: Always\n      restartPolicy: Never"},
	} {
		bad := strings.Replace(string(data), tc.from, tc.to, 1)
		if bad == string(data) {
			t.Fatalf("%s: %q not in sidecar.yaml", tc.desc, tc.from)
		}
		if _, err := decode("sidecar.yaml", []byte(bad)); err == nil {
			t.Errorf("%s: decoded without error", tc.desc)
		}
	}
}

func TestSidecar(t *testing.T) {
	o := load(t, "sidecar.yaml")
	if len(o.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(o.deployments))
	}
	routes, errs := checkNativeSidecar(o.deployments[0].Spec.Template.Spec)
	report(t, errs)
	if len(routes) != 1 || !strings.HasSuffix(routes[0].vars["CSP_CLIENT_SECRET_FILE"], "client-secret") {
		t.Errorf("routes %v: want one route reading its client secret from the Secret", routes)
	}
}

// TestSidecarUnixSocket: the app and credproxy share a unix socket
// through an emptyDir, mode 0660 in the pod's group, ALLOW_UIDS the
// app's user (checkSharedSocket); no other container mounts it, and the
// route has no TCP listener besides.
func TestSidecarUnixSocket(t *testing.T) {
	o := load(t, "sidecar-unix-socket.yaml")
	if len(o.deployments) != 1 {
		t.Fatalf("%d Deployments, want 1", len(o.deployments))
	}
	spec := o.deployments[0].Spec.Template.Spec
	routes, errs := checkNativeSidecar(spec)
	report(t, errs)
	if len(routes) != 1 || !strings.HasPrefix(routes[0].vars["LISTEN"], "unix:/") || routes[0].vars["ALLOW_UIDS"] == "" {
		t.Fatalf("routes %v: want one route on a unix socket with ALLOW_UIDS", routes)
	}
	// The check itself: a world-writable socket, a socket outside the
	// shared volume, or an app in another group is caught.
	for _, tc := range []struct{ desc, from, to string }{
		{"world mode", `value: "0660"`, `value: "0666"`},
		{"app in another group", "            runAsGroup: 65532\n            runAsNonRoot", "            runAsGroup: 1000\n            runAsNonRoot"},
		{"socket outside the volume", "value: unix:/run/credproxy/api.sock", "value: unix:/tmp/api.sock"},
		{"another user allowed", `value: "10001"`, `value: "10002"`},
	} {
		data, err := os.ReadFile(filepath.Join("..", "kubernetes", "sidecar-unix-socket.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		bad := strings.Replace(string(data), tc.from, tc.to, 1)
		if bad == string(data) {
			t.Fatalf("%s: %q not in the manifest", tc.desc, tc.from)
		}
		o, err := decode("bad.yaml", []byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, errs := checkNativeSidecar(o.deployments[0].Spec.Template.Spec); len(errs) == 0 {
			t.Errorf("%s: not caught", tc.desc)
		}
	}
}

func TestJob(t *testing.T) {
	o := load(t, "job.yaml")
	if len(o.jobs) != 1 {
		t.Fatalf("%d Jobs, want 1", len(o.jobs))
	}
	spec := o.jobs[0].Spec.Template.Spec
	_, errs := checkNativeSidecar(spec)
	report(t, errs)
	// The Job completes when its main container exits only if the sidecar
	// is a restartable init container, not a second regular container.
	if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("restartPolicy %q: a Job needs Never or OnFailure", spec.RestartPolicy)
	}
	for _, c := range spec.Containers {
		if c.Name == "credproxy" {
			t.Error("credproxy as a regular container would keep the Job from completing")
		}
	}
}

func TestWorkloadIdentity(t *testing.T) {
	o := load(t, "workload-identity.yaml")
	if len(o.deployments) != 1 || len(o.accounts) != 1 {
		t.Fatalf("%d Deployments and %d ServiceAccounts, want 1 and 1", len(o.deployments), len(o.accounts))
	}
	spec := o.deployments[0].Spec.Template.Spec
	routes, errs := checkNativeSidecar(spec)
	report(t, errs)
	if spec.ServiceAccountName != o.accounts[0].Name {
		t.Errorf("pod runs as %q, not the ServiceAccount %q", spec.ServiceAccountName, o.accounts[0].Name)
	}
	if len(routes) != 1 || routes[0].vars["AUTH"] != "oauth2-token-exchange" {
		t.Fatalf("routes %v: want one oauth2-token-exchange route", routes)
	}
	for _, v := range spec.Volumes {
		if v.Secret != nil {
			t.Errorf("volume %s mounts a Secret; workload identity stores none", v.Name)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the API-server token is automounted; only the audience-bound projected token is needed")
	}
}

func TestGateway(t *testing.T) {
	o := load(t, "gateway.yaml")
	routes, errs := checkGateway(o, "apps")
	report(t, errs)
	if len(routes) == 0 {
		t.Error("no routes")
	}
}
