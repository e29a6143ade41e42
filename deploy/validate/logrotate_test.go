package validate

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// auditLogPath is where the packaged settings point CREDPROXY_AUDIT_LOG
// (commented out: auditing is opt-in), in the unit's LogsDirectory=.
const auditLogPath = "/var/log/credproxy/audit.log"

// logrotateConf is deploy/deb/logrotate parsed for its one stanza: the
// paths it rotates, its directives, and its postrotate script.
type logrotateConf struct {
	paths      []string
	directives []string
	postrotate string
}

func readLogrotate(t *testing.T, file string) logrotateConf {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c logrotateConf
	in, script := false, false
	for n, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#':
		case script && line == "endscript":
			script = false
		case script:
			c.postrotate += line + "\n"
		case !in && strings.HasSuffix(line, "{"):
			c.paths, in = strings.Fields(strings.TrimSuffix(line, "{")), true
		case in && line == "}":
			in = false
		case in && line == "postrotate":
			script = true
		case in:
			c.directives = append(c.directives, line)
		default:
			t.Fatalf("%s:%d: %q outside a stanza", file, n+1, line)
		}
	}
	if in || script || len(c.paths) == 0 {
		t.Fatalf("%s: want one complete stanza", file)
	}
	return c
}

// TestLogrotate: the packaged logrotate rule rotates the audit log where
// the unit's LogsDirectory= puts it, leaves making the new file to
// credproxy (nocreate: the service's dynamic user must own it, mode 0600),
// and tells the service to reopen it with SIGHUP, sent to the main process
// only, and only when it runs.
func TestLogrotate(t *testing.T) {
	c := readLogrotate(t, filepath.Join("..", "deb", "logrotate"))
	if !slices.Equal(c.paths, []string{auditLogPath}) {
		t.Errorf("rotates %q, want %s", c.paths, auditLogPath)
	}
	for _, d := range []string{"nocreate", "missingok", "notifempty", "sharedscripts"} {
		if !slices.Contains(c.directives, d) {
			t.Errorf("directives %q lack %s", c.directives, d)
		}
	}
	for _, d := range c.directives {
		if strings.HasPrefix(d, "create") || d == "copytruncate" {
			t.Errorf("%q: credproxy makes the new file itself on SIGHUP (mode 0600, its own user)", d)
		}
	}
	hup := regexp.MustCompile(`(?m)^systemctl kill --kill-whom=main --signal=HUP credproxy\.service\b`)
	if !hup.MatchString(c.postrotate) {
		t.Errorf("postrotate %q does not send SIGHUP to credproxy.service's main process", c.postrotate)
	}
	u := readUnit(t, filepath.Join("..", "systemd", "credproxy.service"))
	if dir := u.one(t, "Service.LogsDirectory"); "/var/log/"+dir != filepath.Dir(auditLogPath) {
		t.Errorf("LogsDirectory=%s, want %s", dir, strings.TrimPrefix(filepath.Dir(auditLogPath), "/var/log/"))
	}
	if mode := u.one(t, "Service.LogsDirectoryMode"); mode != "0700" {
		t.Errorf("LogsDirectoryMode=%s, want 0700", mode)
	}
	env, err := os.ReadFile(filepath.Join("..", "systemd", "credproxy.env"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env), "\n#CREDPROXY_AUDIT_LOG="+auditLogPath+"\n") {
		t.Errorf("credproxy.env does not offer #CREDPROXY_AUDIT_LOG=%s", auditLogPath)
	}
}

// TestSystemdSocket: the packaged socket unit makes the socket credproxy
// takes for the default route (its FileDescriptorName=), group-only, one
// socket for credproxy rather than a connection each, removed on stop.
// The package ships it but does not enable it (postinst enables nothing).
func TestSystemdSocket(t *testing.T) {
	u := readUnit(t, filepath.Join("..", "systemd", "credproxy.socket"))
	for key, want := range map[string]string{
		"Socket.ListenStream":       "/run/credproxy/credproxy.sock",
		"Socket.SocketMode":         "0660",
		"Socket.Accept":             "no",
		"Socket.RemoveOnStop":       "yes",
		"Socket.FileDescriptorName": "reverse-default",
		"Install.WantedBy":          "sockets.target",
	} {
		if got := u.one(t, key); got != want {
			t.Errorf("%s=%s, want %s", key, got, want)
		}
	}
	post, err := os.ReadFile(filepath.Join("..", "deb", "postinst"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(post), "enable") {
		t.Error("postinst enables a unit: the socket is opt-in (systemctl enable --now credproxy.socket)")
	}
}
