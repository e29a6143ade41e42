package validate

import (
	"bufio"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Where the Debian package puts what the unit refers to.
const (
	unitBinary   = "/usr/bin/credproxy"
	unitEnvFile  = "/etc/credproxy/credproxy.env"
	secretsDir   = "/etc/credproxy/credentials"
	unitCredsDir = "/run/credentials/credproxy.service"
)

// unitFile is a systemd unit: "Section.Key" to its values, in order (a
// key may repeat).
type unitFile map[string][]string

// one returns the single value of key, failing t if it is not set exactly
// once.
func (u unitFile) one(t *testing.T, key string) string {
	t.Helper()
	if v := u[key]; len(v) == 1 {
		return v[0]
	}
	t.Errorf("%s is set %d times, want once: %q", key, len(u[key]), u[key])
	return ""
}

// readUnit parses a unit file as systemd does, for the syntax the unit
// uses: sections, Key=Value lines, # and ; comments. A continued line
// (trailing backslash) or a line outside a section fails t, since the
// checks below would misread it.
func readUnit(t *testing.T, file string) unitFile {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: a continued line; keep each setting on one", file, n)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not Key=Value in a section: %q", file, n, line)
			}
			key := section + "." + strings.TrimSpace(k)
			u[key] = append(u[key], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// readEnvFile parses an EnvironmentFile for the syntax credproxy.env
// uses: VAR=value lines and # comments. Quotes, backslashes and a # after
// a value mean something else to systemd than they seem to, so they fail
// t rather than being parsed.
func readEnvFile(t *testing.T, file string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(v, "'\"\\#") || strings.ContainsAny(k, " \t") {
			t.Errorf("%s:%d: %q: keep to VAR=value without quotes, backslashes or #", file, n+1, line)
			continue
		}
		env[k] = v
	}
	return env
}

// hardening is what the unit must set for credproxy to run locked down:
// systemd-analyze security rates it (.ci/package), this keeps each
// setting from being dropped unnoticed.
var hardening = map[string]string{
	"DynamicUser": "yes", "UMask": "0077", "NoNewPrivileges": "yes",
	"CapabilityBoundingSet": "", "AmbientCapabilities": "",
	"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
	"PrivateMounts": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
	"ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes",
	"ProtectHostname": "yes", "ProtectProc": "invisible", "RestrictNamespaces": "yes",
	"RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
	"MemoryDenyWriteExecute": "yes", "RemoveIPC": "yes",
	"SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM",
}

// TestSystemdUnit checks deploy/systemd/credproxy.service against what
// credproxy does under it: Type=notify (credproxy sends READY=1 and
// STOPPING=1, and WATCHDOG=1 at half of WatchdogSec), reload by SIGHUP, settings from the
// packaged environment file, secrets as credentials from the packaged
// secrets directory, and the hardening.
func TestSystemdUnit(t *testing.T) {
	u := readUnit(t, filepath.Join("..", "systemd", "credproxy.service"))
	for key, want := range map[string]string{
		"Service.Type":         "notify",
		"Service.NotifyAccess": "main",
		"Service.ExecStart":    unitBinary + " run",
		"Service.ExecReload":   "/bin/kill -HUP $MAINPID",
		"Service.Restart":      "on-failure",
		// Pinged every 15 s; well above a stalled GC or a busy machine.
		"Service.WatchdogSec":     "30s",
		"Service.EnvironmentFile": unitEnvFile,
		"Install.WantedBy":        "multi-user.target",
	} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	for key, want := range hardening {
		if got := u.one(t, "Service."+key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	if got := u["Service.SystemCallFilter"]; !slices.Contains(got, "@system-service") {
		t.Errorf("SystemCallFilter %q lacks @system-service", got)
	}
	for _, key := range []string{"Service.User", "Service.Group", "Service.Environment"} {
		if v, ok := u[key]; ok {
			// User=: DynamicUser makes one. Environment=: settings
			// belong in the environment file, secrets in credentials.
			t.Errorf("%s=%q is set", key, v)
		}
	}
	ids := credentialIDs(t, u)
	if len(ids) == 0 {
		t.Error("no LoadCredential=: the example route's secret has no way in")
	}
}

// addressFamilies are the socket families the unit must allow, and why;
// RestrictAddressFamilies must allow these and nothing else.
var addressFamilies = map[string]string{
	"AF_INET":  "clients, upstreams and identity services over IPv4",
	"AF_INET6": "the same over IPv6",
	"AF_UNIX":  "NOTIFY_SOCKET, the journal, and unix:/path.sock listeners",
	// Without it net.InterfaceAddrs fails, and the forward proxy's
	// own-listener guard, failing closed, refuses every destination on
	// the port of a listener bound to 0.0.0.0.
	"AF_NETLINK": "listing this machine's addresses for the forward proxy's own-listener guard",
}

// TestSystemdUnitAddressFamilies: RestrictAddressFamilies is an allow
// list holding exactly what credproxy needs, AF_NETLINK included.
func TestSystemdUnitAddressFamilies(t *testing.T) {
	u := readUnit(t, filepath.Join("..", "systemd", "credproxy.service"))
	value := u.one(t, "Service.RestrictAddressFamilies")
	if strings.HasPrefix(value, "~") {
		t.Fatalf("RestrictAddressFamilies=%s is a deny list; want an allow list", value)
	}
	got := strings.Fields(value)
	for family, why := range addressFamilies {
		if !slices.Contains(got, family) {
			t.Errorf("RestrictAddressFamilies=%s lacks %s, needed for %s", value, family, why)
		}
	}
	for _, family := range got {
		if _, ok := addressFamilies[family]; !ok {
			t.Errorf("RestrictAddressFamilies=%s allows %s, which credproxy does not use", value, family)
		}
	}
}

// credentialIDs returns the IDs of the unit's LoadCredential= lines,
// failing t for one that does not read /etc/credproxy/credentials/<ID>.
func credentialIDs(t *testing.T, u unitFile) []string {
	t.Helper()
	var ids []string
	for _, lc := range u["Service.LoadCredential"] {
		id, src, _ := strings.Cut(lc, ":")
		if src != path.Join(secretsDir, id) {
			t.Errorf("LoadCredential=%s: want %s:%s/%s", lc, id, secretsDir, id)
		}
		ids = append(ids, id)
	}
	return ids
}

// TestSystemdEnvFile: the packaged environment file is a configuration
// credproxy accepts as it stands, within the contract (secrets by file
// only), and every *_FILE in it names a credential the unit loads, in the
// directory systemd puts the service's credentials in.
func TestSystemdEnvFile(t *testing.T) {
	env := readEnvFile(t, filepath.Join("..", "systemd", "credproxy.env"))
	if env["CREDPROXY_AUTH"] != "csp-api-token" {
		t.Errorf("CREDPROXY_AUTH=%s: the example is a csp-api-token route", env["CREDPROXY_AUTH"])
	}
	_, errs := checkEnv(env)
	report(t, errs)
	ids := credentialIDs(t, readUnit(t, filepath.Join("..", "systemd", "credproxy.service")))
	for k, v := range env {
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		dir, id := path.Split(v)
		if path.Clean(dir) != unitCredsDir || !slices.Contains(ids, id) {
			t.Errorf("%s=%s: want %s/<ID> for an ID of the unit's LoadCredential= (%q)", k, v, unitCredsDir, ids)
		}
	}
}
