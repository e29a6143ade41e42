package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wavefronthq/wavefront-sdk-go/senders"
)

// TestGateWavefrontSDK drives a real SDK, wavefront-sdk-go's direct
// sender, through the reverse listener with the client key as its API
// token ("http://KEY@host:port"): the SDK's own Authorization: Bearer
// carries the key, the gate swaps it for the real credential, and the
// upstream (which answers 401 to anything else) accepts the report. A
// sender with a wrong key gets 401 and its Flush fails.
func TestGateWavefrontSDK(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("wavefront:"+gateClientKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auditPath := filepath.Join(dir, "audit.log")
	r := startFaultRig(t, map[string]string{"CREDPROXY_CLIENT_KEYS_FILE": keys, "CREDPROXY_AUDIT_LOG": auditPath})
	r.h.Secret(gateClientKey)
	send := func(key string) (int64, error) {
		sender, err := senders.NewSender("http://"+key+"@"+r.proxy, senders.FlushIntervalSeconds(3600))
		if err != nil {
			t.Fatal(err)
		}
		defer sender.Close()
		if err := sender.SendMetric("credproxy.gate.test", 1, time.Now().Unix(), "gate-test", map[string]string{"env": "test"}); err != nil {
			t.Fatal(err)
		}
		err = sender.Flush()
		return sender.GetFailureCount(), err
	}
	if failures, err := send(gateClientKey); err != nil || failures != 0 {
		t.Errorf("the SDK with the key: %v, %d failures", err, failures)
	}
	if failures, err := send("wrong-key-0123456789abc"); err == nil || failures == 0 {
		t.Errorf("the SDK with a wrong key: %v, %d failures", err, failures)
	}
	var lines []map[string]any
	r.eventually("audit lines", 5*time.Second, func() bool {
		lines = readAudit(t, auditPath)
		return len(lines) >= 2
	})
	ok := false
	for _, l := range lines {
		if l["decision"] == "allowed" && l["key"] == "wavefront" && l["method"] == "POST" && strings.HasPrefix(l["path"].(string), "/report") && l["status"] == float64(200) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no allowed POST /report by key wavefront in the audit log: %v", lines)
	}
}
