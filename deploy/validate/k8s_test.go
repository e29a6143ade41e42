package validate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// objects are the decoded documents of one or more manifests.
type objects struct {
	deployments []*appsv1.Deployment
	jobs        []*batchv1.Job
	services    []*corev1.Service
	accounts    []*corev1.ServiceAccount
	pdbs        []*policyv1.PodDisruptionBudget
	policies    []*networkingv1.NetworkPolicy
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// decode splits a multi-document YAML stream and decodes each document
// strictly into the API type its apiVersion and kind name: an unknown or
// misspelt field, a duplicate key or a wrong type is an error.
func decode(name string, data []byte) (*objects, error) {
	o := &objects{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if tm.Kind == "" && len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var target any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			o.deployments, target = append(o.deployments, v), v
		case "batch/v1 Job":
			v := &batchv1.Job{}
			o.jobs, target = append(o.jobs, v), v
		case "v1 Service":
			v := &corev1.Service{}
			o.services, target = append(o.services, v), v
		case "v1 ServiceAccount":
			v := &corev1.ServiceAccount{}
			o.accounts, target = append(o.accounts, v), v
		case "policy/v1 PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			o.pdbs, target = append(o.pdbs, v), v
		case "networking.k8s.io/v1 NetworkPolicy":
			v := &networkingv1.NetworkPolicy{}
			o.policies, target = append(o.policies, v), v
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			o.hpas, target = append(o.hpas, v), v
		default:
			return nil, fmt.Errorf("%s: document %d: unexpected %q %q", name, i, tm.APIVersion, tm.Kind)
		}
		if err := strictInto(doc, target); err != nil {
			return nil, fmt.Errorf("%s: document %d (%s): %w", name, i, tm.Kind, err)
		}
	}
	return o, nil
}

// strictInto decodes one YAML document as the API server does: field
// names match case-sensitively (encoding/json, under sigs.k8s.io/yaml's
// UnmarshalStrict, would accept "readOnlyRootFileSystem"), and unknown or
// duplicate fields are errors.
func strictInto(doc []byte, target any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, target, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func stripComments(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(string(doc), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// envOf returns a container's literal environment; valueFrom entries are
// refused, secrets reach credproxy as files.
func envOf(c corev1.Container) (map[string]string, []error) {
	env := map[string]string{}
	var errs []error
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			errs = append(errs, fmt.Errorf("container %s: %s uses valueFrom; mount the Secret and use a *_FILE variable", c.Name, e.Name))
		}
		if _, dup := env[e.Name]; dup {
			errs = append(errs, fmt.Errorf("container %s: %s set twice", c.Name, e.Name))
		}
		env[e.Name] = e.Value
	}
	return env, errs
}

// checkHardened: non-root, read-only root file system, no privilege
// escalation, all capabilities dropped, requests and limits for CPU and
// memory.
func checkHardened(spec corev1.PodSpec, c corev1.Container) []error {
	var errs []error
	sc := c.SecurityContext
	if sc == nil {
		return []error{fmt.Errorf("container %s: no securityContext", c.Name)}
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && spec.SecurityContext != nil {
		nonRoot = spec.SecurityContext.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		errs = append(errs, fmt.Errorf("container %s: runAsNonRoot is not true", c.Name))
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		errs = append(errs, fmt.Errorf("container %s: readOnlyRootFilesystem is not true", c.Name))
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		errs = append(errs, fmt.Errorf("container %s: allowPrivilegeEscalation is not false", c.Name))
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		errs = append(errs, fmt.Errorf("container %s: capabilities must drop ALL and add none", c.Name))
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim {
			errs = append(errs, fmt.Errorf("container %s: %s request and limit required", c.Name, r))
		} else if req.Cmp(lim) > 0 {
			errs = append(errs, fmt.Errorf("container %s: %s request above limit", c.Name, r))
		}
	}
	return errs
}

// probe returns the HTTP GET path of a probe and whether its port names
// (or numbers) a port of the container that the admin listener binds.
func checkProbe(c corev1.Container, p *corev1.Probe, what, wantPath string, adminPort int32) error {
	if p == nil || p.HTTPGet == nil {
		return fmt.Errorf("container %s: no HTTP %s", c.Name, what)
	}
	if p.HTTPGet.Path != wantPath {
		return fmt.Errorf("container %s: %s on %q, want %q", c.Name, what, p.HTTPGet.Path, wantPath)
	}
	port := p.HTTPGet.Port
	if port.Type == intstr.String {
		i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal })
		if i < 0 {
			return fmt.Errorf("container %s: %s port %q is not a container port", c.Name, what, port.StrVal)
		}
		port = intstr.FromInt32(c.Ports[i].ContainerPort)
	}
	if port.IntVal != adminPort {
		return fmt.Errorf("container %s: %s on port %d, the admin listener is on %d", c.Name, what, port.IntVal, adminPort)
	}
	return nil
}

// checkCredproxy checks a credproxy container in its pod: image, env
// contract, admin listener reachable by the kubelet, probes, hardening,
// and every *_FILE path inside a read-only mount of a volume that holds it
// (a Secret, or a projected service-account token for SUBJECT_TOKEN_FILE).
func checkCredproxy(spec corev1.PodSpec, c corev1.Container, readiness bool) ([]route, []error) {
	var errs []error
	if !imageRef.MatchString(c.Image) {
		errs = append(errs, fmt.Errorf("container %s: image %q is not ghcr.io/credproxy/credproxy:vX.Y.Z", c.Name, c.Image))
	}
	env, e := envOf(c)
	errs = append(errs, e...)
	routes, e := checkEnv(env)
	errs = append(errs, e...)
	admin := env["CREDPROXY_ADMIN_ADDR"]
	host, portStr, ok := strings.Cut(admin, ":")
	if !ok || (host != "0.0.0.0" && host != "") {
		errs = append(errs, fmt.Errorf("container %s: CREDPROXY_ADMIN_ADDR=%q: the kubelet probes the pod IP, bind 0.0.0.0", c.Name, admin))
	}
	var adminPort int32
	fmt.Sscan(portStr, &adminPort)
	if err := checkProbe(c, c.StartupProbe, "startupProbe", "/readyz", adminPort); err != nil {
		errs = append(errs, err)
	}
	if err := checkProbe(c, c.LivenessProbe, "livenessProbe", "/healthz", adminPort); err != nil {
		errs = append(errs, err)
	}
	if readiness {
		if err := checkProbe(c, c.ReadinessProbe, "readinessProbe", "/readyz", adminPort); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, checkHardened(spec, c)...)
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, r := range routes {
		for k, p := range r.vars {
			if !strings.HasSuffix(k, "_FILE") {
				continue
			}
			i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
				return path.Dir(p) == path.Clean(m.MountPath)
			})
			if i < 0 {
				errs = append(errs, fmt.Errorf("container %s: route %q %s=%s is in no volume mount", c.Name, r.name, k, p))
				continue
			}
			m := c.VolumeMounts[i]
			if !m.ReadOnly {
				errs = append(errs, fmt.Errorf("container %s: mount %s is not readOnly", c.Name, m.Name))
			}
			v, ok := volumes[m.Name]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("container %s: mount %s names no volume", c.Name, m.Name))
			case k == "SUBJECT_TOKEN_FILE":
				if v.Projected == nil || len(v.Projected.Sources) == 0 || v.Projected.Sources[0].ServiceAccountToken == nil ||
					v.Projected.Sources[0].ServiceAccountToken.Audience == "" ||
					v.Projected.Sources[0].ServiceAccountToken.Path != path.Base(p) {
					errs = append(errs, fmt.Errorf("container %s: %s must be a projected service-account token with an audience at %s", c.Name, k, p))
				}
			default:
				if v.Secret == nil || v.Secret.SecretName == "" {
					errs = append(errs, fmt.Errorf("container %s: %s is not on a Secret volume", c.Name, k))
				} else if err := checkReadable(spec, c, v); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return routes, errs
}

// checkReadable: Secret files are owned by root; a non-root credproxy
// reads them through the world bits of the mode or, when those are off,
// the group bits with the pod's fsGroup.
func checkReadable(spec corev1.PodSpec, c corev1.Container, v corev1.Volume) error {
	mode := int32(0o644)
	if v.Secret.DefaultMode != nil {
		mode = *v.Secret.DefaultMode
	}
	if mode&0o004 != 0 {
		return nil
	}
	if mode&0o040 == 0 || spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil {
		return fmt.Errorf("container %s: secret volume %s has mode %#o and the pod no fsGroup: a non-root user cannot read it", c.Name, v.Name, mode)
	}
	return nil
}

// checkNativeSidecar checks a pod with credproxy as a native sidecar.
func checkNativeSidecar(spec corev1.PodSpec) ([]route, []error) {
	var errs []error
	i := slices.IndexFunc(spec.InitContainers, func(c corev1.Container) bool { return c.Name == "credproxy" })
	if i < 0 {
		return nil, []error{errors.New("no init container named credproxy")}
	}
	c := spec.InitContainers[i]
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		errs = append(errs, errors.New("credproxy init container: restartPolicy is not Always (not a native sidecar)"))
	}
	routes, e := checkCredproxy(spec, c, false)
	errs = append(errs, e...)
	if len(spec.Containers) == 0 {
		errs = append(errs, errors.New("no app container"))
	}
	for _, app := range spec.Containers {
		errs = append(errs, checkHardened(spec, app)...)
	}
	for _, r := range routes {
		l := r.vars["LISTEN"]
		switch {
		case strings.HasPrefix(l, "unix:"):
			errs = append(errs, checkSharedSocket(spec, c, r)...)
		case l != "" && !strings.HasPrefix(l, "127.0.0.1:"):
			errs = append(errs, fmt.Errorf("route %q: a sidecar's reverse listener stays on loopback or a unix socket, not %s", r.name, l))
		}
	}
	return routes, errs
}

// checkSharedSocket checks a route of sidecar c that listens on a unix
// socket: the socket's directory is an emptyDir that credproxy mounts
// writable and the app containers that call it mount too (and no other
// container); the socket is mode 0660; every container that mounts it
// runs in the pod's fsGroup, so the group bits let it connect; and
// ALLOW_UIDS names only users of those containers.
func checkSharedSocket(spec corev1.PodSpec, c corev1.Container, r route) []error {
	var errs []error
	dir := path.Dir(strings.TrimPrefix(r.vars["LISTEN"], "unix:"))
	if mode := r.vars["LISTEN_MODE"]; mode != "0660" {
		errs = append(errs, fmt.Errorf("route %q: LISTEN_MODE=%q, want 0660 (owner and group, not the world)", r.name, mode))
	}
	mountAt := func(c corev1.Container) *corev1.VolumeMount {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == dir })
		if i < 0 {
			return nil
		}
		return &c.VolumeMounts[i]
	}
	m := mountAt(c)
	if m == nil || m.ReadOnly {
		return append(errs, fmt.Errorf("route %q: credproxy does not mount %s writable to make its socket", r.name, dir))
	}
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
	if i < 0 || spec.Volumes[i].EmptyDir == nil {
		errs = append(errs, fmt.Errorf("route %q: %s is not an emptyDir: the socket must live in the pod alone", r.name, dir))
	}
	var fsGroup int64 = -1
	if sc := spec.SecurityContext; sc != nil && sc.FSGroup != nil {
		fsGroup = *sc.FSGroup
	}
	uids := map[string]bool{}
	callers := 0
	for _, app := range spec.Containers {
		am := mountAt(app)
		if am == nil || am.Name != m.Name {
			continue
		}
		callers++
		if g := runAs(spec, app, func(sc *corev1.SecurityContext) *int64 { return sc.RunAsGroup },
			func(sc *corev1.PodSecurityContext) *int64 { return sc.RunAsGroup }); g == nil || *g != fsGroup {
			errs = append(errs, fmt.Errorf("container %s: runAsGroup is not the pod's fsGroup %d: the 0660 socket refuses it", app.Name, fsGroup))
		}
		if u := runAs(spec, app, func(sc *corev1.SecurityContext) *int64 { return sc.RunAsUser },
			func(sc *corev1.PodSecurityContext) *int64 { return sc.RunAsUser }); u != nil {
			uids[fmt.Sprint(*u)] = true
		}
	}
	if callers == 0 {
		errs = append(errs, fmt.Errorf("route %q: no app container mounts the socket's volume", r.name))
	}
	for _, u := range strings.Split(r.vars["ALLOW_UIDS"], ",") {
		if u = strings.TrimSpace(u); u != "" && !uids[u] {
			errs = append(errs, fmt.Errorf("route %q: ALLOW_UIDS names %s, the user of no container that mounts the socket", r.name, u))
		}
	}
	return errs
}

// runAs is a container's effective run-as id: its own security
// context's, else the pod's.
func runAs(spec corev1.PodSpec, c corev1.Container, own func(*corev1.SecurityContext) *int64, pod func(*corev1.PodSecurityContext) *int64) *int64 {
	if c.SecurityContext != nil {
		if v := own(c.SecurityContext); v != nil {
			return v
		}
	}
	if spec.SecurityContext != nil {
		return pod(spec.SecurityContext)
	}
	return nil
}

// checkGateway checks a shared egress gateway: a Deployment of at least 2
// replicas (or an HPA with minReplicas >= 2), a Service, a PDB and a
// NetworkPolicy that select its pods, the NetworkPolicy admitting only
// clientNS to the proxy ports, and an HPA that scales it.
func checkGateway(o *objects, clientNS string) ([]route, []error) {
	var errs []error
	if len(o.deployments) != 1 {
		return nil, []error{fmt.Errorf("%d Deployments, want 1", len(o.deployments))}
	}
	d := o.deployments[0]
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		errs = append(errs, fmt.Errorf("deployment %s: selector does not match its pod labels", d.Name))
	}
	if len(spec.Containers) != 1 {
		return nil, append(errs, fmt.Errorf("deployment %s: %d containers, want 1", d.Name, len(spec.Containers)))
	}
	c := spec.Containers[0]
	routes, e := checkCredproxy(spec, c, true)
	errs = append(errs, e...)
	var proxyPorts []int32
	for _, r := range routes {
		l := r.vars["LISTEN"]
		var p int32
		if _, err := fmt.Sscanf(strings.TrimPrefix(l, "0.0.0.0:"), "%d", &p); err != nil || !strings.HasPrefix(l, "0.0.0.0:") {
			errs = append(errs, fmt.Errorf("route %q: a gateway listens on 0.0.0.0:PORT, not %q", r.name, l))
			continue
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == p }) {
			errs = append(errs, fmt.Errorf("route %q: port %d is not a container port", r.name, p))
		}
		proxyPorts = append(proxyPorts, p)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	if len(o.hpas) != 1 {
		errs = append(errs, fmt.Errorf("%d HorizontalPodAutoscalers, want 1", len(o.hpas)))
	} else {
		h := o.hpas[0]
		if h.Spec.ScaleTargetRef.Kind != "Deployment" || h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.ScaleTargetRef.APIVersion != "apps/v1" {
			errs = append(errs, fmt.Errorf("hpa %s: scales %v, not deployment %s", h.Name, h.Spec.ScaleTargetRef, d.Name))
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas || len(h.Spec.Metrics) == 0 {
			errs = append(errs, fmt.Errorf("hpa %s: want minReplicas >= 2, maxReplicas >= minReplicas and a metric", h.Name))
		}
		if d.Spec.Replicas == nil && h.Spec.MinReplicas != nil {
			replicas = *h.Spec.MinReplicas
		}
	}
	if replicas < 2 {
		errs = append(errs, fmt.Errorf("deployment %s: %d replicas, want at least 2", d.Name, replicas))
	}
	if len(o.services) != 1 {
		errs = append(errs, fmt.Errorf("%d Services, want 1", len(o.services)))
	} else {
		s := o.services[0]
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
			errs = append(errs, fmt.Errorf("service %s: selector does not match the gateway pods", s.Name))
		}
		for _, p := range proxyPorts {
			if !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return resolvePort(c, sp.TargetPort) == p }) {
				errs = append(errs, fmt.Errorf("service %s: no port targets proxy port %d", s.Name, p))
			}
		}
		for _, sp := range s.Spec.Ports {
			if resolvePort(c, sp.TargetPort) == 0 {
				errs = append(errs, fmt.Errorf("service %s: port %s targets %s, not a container port", s.Name, sp.Name, sp.TargetPort.String()))
			}
		}
	}
	if len(o.pdbs) != 1 {
		errs = append(errs, fmt.Errorf("%d PodDisruptionBudgets, want 1", len(o.pdbs)))
	} else {
		p := o.pdbs[0]
		s, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || s.Empty() || !s.Matches(podLabels) {
			errs = append(errs, fmt.Errorf("pdb %s: selector does not match the gateway pods", p.Name))
		}
		if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
			errs = append(errs, fmt.Errorf("pdb %s: neither minAvailable nor maxUnavailable", p.Name))
		}
	}
	if len(o.policies) != 1 {
		errs = append(errs, fmt.Errorf("%d NetworkPolicies, want 1", len(o.policies)))
	} else {
		errs = append(errs, checkPolicy(o.policies[0], c, podLabels, proxyPorts, clientNS)...)
	}
	return routes, errs
}

// resolvePort maps a target port (number or container port name) to a
// container port number, 0 when it names none.
func resolvePort(c corev1.Container, p intstr.IntOrString) int32 {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// checkPolicy: the policy selects the gateway pods, restricts ingress, and
// every rule that opens a proxy port admits only pods of clientNS (a
// namespaceSelector on kubernetes.io/metadata.name with no pod or IP
// peers). Rules without ports would open everything, so they are refused.
func checkPolicy(np *networkingv1.NetworkPolicy, c corev1.Container, podLabels labels.Set, proxyPorts []int32, clientNS string) []error {
	var errs []error
	s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || s.Empty() || !s.Matches(podLabels) {
		errs = append(errs, fmt.Errorf("networkpolicy %s: podSelector does not select the gateway pods", np.Name))
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		errs = append(errs, fmt.Errorf("networkpolicy %s: policyTypes lacks Ingress", np.Name))
	}
	admitted := map[int32]bool{}
	for i, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 || len(rule.From) == 0 {
			errs = append(errs, fmt.Errorf("networkpolicy %s: ingress rule %d opens every port or every source", np.Name, i))
			continue
		}
		opensProxy := false
		for _, p := range rule.Ports {
			if p.Port == nil {
				errs = append(errs, fmt.Errorf("networkpolicy %s: ingress rule %d has a port entry without a port", np.Name, i))
				continue
			}
			if n := resolvePort(c, *p.Port); slices.Contains(proxyPorts, n) {
				opensProxy = true
				admitted[n] = true
			}
		}
		if !opensProxy {
			continue
		}
		for _, peer := range rule.From {
			if peer.IPBlock != nil || peer.PodSelector != nil || peer.NamespaceSelector == nil ||
				len(peer.NamespaceSelector.MatchExpressions) > 0 ||
				!maps1(peer.NamespaceSelector.MatchLabels, "kubernetes.io/metadata.name", clientNS) {
				errs = append(errs, fmt.Errorf("networkpolicy %s: ingress rule %d admits %v to a proxy port, want only namespace %s", np.Name, i, peer, clientNS))
			}
		}
	}
	for _, p := range proxyPorts {
		if !admitted[p] {
			errs = append(errs, fmt.Errorf("networkpolicy %s: proxy port %d is admitted to nobody", np.Name, p))
		}
	}
	return errs
}

func maps1(m map[string]string, k, v string) bool { return len(m) == 1 && m[k] == v }
