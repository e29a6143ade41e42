package validate

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
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
	// credentialsID is the ID of the unit's one LoadCredential=, which
	// names the secrets directory: systemd loads every file in it, the
	// file <name> as the credential credentials_<name>
	// (systemd.exec(5), "If an absolute path referring to a directory is
	// specified..."), so that every kind's secret gets in without a line
	// of its own, and no kind's file must exist.
	credentialsID = "credentials"
	// checkHelper runs `credproxy check` with the unit's settings and
	// secrets, before the unit is enabled.
	checkHelper = "/usr/sbin/credproxy-check"
)

// credentialPath is where the service reads the secret that the
// administrator put at secretsDir/name.
func credentialPath(name string) string {
	return unitCredsDir + "/" + credentialsID + "_" + name
}

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
		// Exit 2 is a configuration error: starting again cannot help,
		// and a restart loop would hide it.
		"Service.RestartPreventExitStatus": "2",
		// Every file of the secrets directory, whatever the kinds.
		"Service.LoadCredential": credentialsID + ":" + secretsDir,
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
	for _, key := range []string{"Service.ExecStartPre", "Service.ExecCondition", "Service.SuccessExitStatus"} {
		if v, ok := u[key]; ok {
			// An exchange of its own before every start would double the
			// identity service's load on restarts; credproxy-check is
			// the check, run by hand.
			t.Errorf("%s=%q is set", key, v)
		}
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

// TestSystemdEnvFile: the packaged environment file is a configuration
// credproxy accepts as it stands, within the contract (secrets by file
// only), and every *_FILE in it names the copy of a file of the secrets
// directory, where systemd puts it for the service.
func TestSystemdEnvFile(t *testing.T) {
	env := readEnvFile(t, filepath.Join("..", "systemd", "credproxy.env"))
	if env["CREDPROXY_AUTH"] != "csp-api-token" {
		t.Errorf("CREDPROXY_AUTH=%s: the example is a csp-api-token route", env["CREDPROXY_AUTH"])
	}
	_, errs := checkEnv(env)
	report(t, errs)
	for k, v := range env {
		if !strings.HasSuffix(k, "_FILE") {
			continue
		}
		name, ok := strings.CutPrefix(v, credentialPath(""))
		if !ok || name == "" || strings.Contains(name, "/") {
			t.Errorf("%s=%s: want %s for a file %s/<name>", k, v, credentialPath("<name>"), secretsDir)
		}
	}
}

// reservedHost: a host name that can never be someone's live host
// (RFC 2606, RFC 6761), or loopback.
var reservedHost = regexp.MustCompile(`(^|\.)(example\.(com|net|org)|example|invalid|test|localhost)$|^127\.0\.0\.1$`)

// TestSystemdEnvFileNoLiveHosts: the packaged settings, comments included,
// name no host that exists: an administrator who starts the example as it
// stands sends nothing to anyone (and check's handshake fails, naming the
// host to change).
func TestSystemdEnvFileNoLiveHosts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "systemd", "credproxy.env"))
	if err != nil {
		t.Fatal(err)
	}
	urls := regexp.MustCompile(`[a-z][a-z0-9+.-]*://([A-Za-z0-9.-]+)`).FindAllStringSubmatch(string(data), -1)
	if len(urls) == 0 {
		t.Fatal("no URL in credproxy.env: the example sets CREDPROXY_UPSTREAM")
	}
	for _, m := range urls {
		if !reservedHost.MatchString(strings.ToLower(m[1])) {
			t.Errorf("credproxy.env names %s (%s): use a reserved name (example.com, .invalid)", m[1], m[0])
		}
	}
}
