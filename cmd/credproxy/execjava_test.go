package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
)

// javaMain GETs its argument with HttpURLConnection over the proxy of
// https.proxyHost/https.proxyPort and prints the body. Java sends no
// proxy credentials on a CONNECT (Basic is disabled for tunnels), so
// exec's proxy serves it by its uid alone.
const javaMain = `import java.io.InputStream;
import java.net.HttpURLConnection;
import java.net.URL;

public class Main {
    public static void main(String[] args) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(args[0]).openConnection();
        c.setConnectTimeout(20000);
        c.setReadTimeout(30000);
        int code = c.getResponseCode();
        InputStream in = code < 400 ? c.getInputStream() : c.getErrorStream();
        System.out.write(in.readAllBytes());
        System.out.flush();
        if (code != 200) {
            System.err.println("HTTP " + code);
            System.exit(5);
        }
    }
}
`

// javaScript builds a trust store of exec's CA ($NODE_EXTRA_CA_CERTS
// starts with it) and runs Main.java through the proxy of HTTPS_PROXY
// (its host and port; the key in it is of no use to Java). Java never
// proxies 127.*, localhost and ::1 (where the fake API is) unless
// http.nonProxyHosts, read for https too, is set empty: any other value
// gets those patterns appended (JDK 17's DefaultProxySelector).
const javaScript = `set -e
ks="$1/truststore.p12"
keytool -importcert -noprompt -alias credproxy -file "$NODE_EXTRA_CA_CERTS" -keystore "$ks" -storetype PKCS12 -storepass changeit >/dev/null
hp=${HTTPS_PROXY#http://}; hp=${hp#*@}; hp=${hp%/}
exec java -Djavax.net.ssl.trustStore="$ks" -Djavax.net.ssl.trustStorePassword=changeit \
  -Dhttps.proxyHost="${hp%:*}" -Dhttps.proxyPort="${hp##*:}" -Dhttp.nonProxyHosts= \
  "$1/Main.java" "$2"
`

// requireJava finds java, javac and keytool; without them the test is
// skipped, or fails where CREDPROXY_REQUIRE_JAVA is set (CI, which
// installs them).
func requireJava(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"java", "javac", "keytool"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CREDPROXY_REQUIRE_JAVA") != "" {
				t.Fatalf("%s not found and CREDPROXY_REQUIRE_JAVA is set (.ci/run installs default-jdk-headless)", tool)
			}
			t.Skipf("%s not found (set CREDPROXY_REQUIRE_JAVA to make this a failure)", tool)
		}
	}
}

// TestExecJava: a Java program using HttpURLConnection over HTTPS reaches
// the API through exec's proxy with a valid token. Java cannot send proxy
// credentials on a CONNECT, so this is the uid check at work; it trusts
// exec's name-constrained CA through a trust store made with keytool.
func TestExecJava(t *testing.T) {
	requireJava(t)
	const apiToken = "execJava-8d2a-41c7"
	csp, cspURL, echo, echoURL, certFile := fakes(t, demo.CSPOptions{APIToken: apiToken, TTL: time.Hour})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Main.java"), []byte(javaMain), 0o644); err != nil {
		t.Fatal(err)
	}
	env := withPath(execEnv(cspURL, apiToken, echoURL, certFile))
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		env["JAVA_HOME"] = jh
	}
	code, out, errOut := runBinary(t, env, "exec", "--", "sh", "-c", javaScript, "sh", dir, echoURL+"/api/v2/java")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	var e struct {
		Authorized bool   `json:"authorized"`
		Path       string `json:"path"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || !e.Authorized || e.Path != "/api/v2/java" {
		t.Errorf("Java got %s (%v)", out, err)
	}
	if tok := strings.TrimPrefix(echo.LastHeader().Get("Authorization"), "Bearer "); !csp.Valid(tok) {
		t.Error("the API saw no valid token")
	}
	if strings.Contains(errOut, "not authorized") {
		t.Errorf("exec refused Java: %s", errOut)
	}
}
