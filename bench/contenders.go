package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// The contenders' configurations. Each is what an operator would deploy
// instead of credproxy, tuned the way their documentation advises for a
// keep-alive pool to one TLS upstream: plain HTTP in, TLS out, the
// credential set as a static header, upstream connections reused.

// nginxConf is nginx with proxy_set_header from a (cron-refreshed) config.
func nginxConf(dir string, port, upPort int, token string) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-body;
  proxy_temp_path %[1]s/nginx-proxy;
  fastcgi_temp_path %[1]s/nginx-fastcgi;
  uwsgi_temp_path %[1]s/nginx-uwsgi;
  scgi_temp_path %[1]s/nginx-scgi;
  keepalive_requests 1000000;
  upstream api {
    server 127.0.0.1:%[3]d;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      proxy_pass https://api;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:%[3]d;
      proxy_set_header Authorization "Bearer %[4]s";
      proxy_ssl_server_name on;
      proxy_ssl_name %[5]s;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate %[1]s/ca.pem;
      proxy_ssl_session_reuse on;
      proxy_buffering on;
    }
  }
}
`, dir, port, upPort, token, upstreamName)
}

// haproxyConf is HAProxy with http-request set-header.
func haproxyConf(dir string, port, upPort int, token string) string {
	return fmt.Sprintf(`global
  maxconn 8192
  nbthread 2
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:%[2]d
  default_backend be
backend be
  http-request set-header Authorization "Bearer %[4]s"
  http-request set-header Host 127.0.0.1:%[3]d
  server up 127.0.0.1:%[3]d ssl verify required ca-file %[1]s/ca.pem sni str(%[5]s) verifyhost %[5]s pool-max-conn 512 maxconn 4096
`, dir, port, upPort, token, upstreamName)
}

// mitmAddon is the mitmproxy addon that sets the header for the upstream
// host, as a user would script it.
func mitmAddon(upPort int, token string) string {
	return fmt.Sprintf(`from mitmproxy import http

HOST = "127.0.0.1"
PORT = %d
VALUE = "Bearer %s"


class Inject:
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.request.host == HOST and flow.request.port == PORT:
            flow.request.headers["Authorization"] = VALUE


addons = [Inject()]
`, upPort, token)
}

// credproxyEnv is credproxy's configuration: one static-token route with
// a reverse listener, and the forward proxy. The upstream's CA is trusted
// through SSL_CERT_FILE, as in a deployment with a private CA.
func credproxyEnv(dir string, port, fwdPort, adminPort, upPort int, token string) []string {
	return []string{
		"CREDPROXY_AUTH=static",
		"CREDPROXY_TOKEN=" + token,
		"CREDPROXY_UPSTREAM=https://127.0.0.1:" + strconv.Itoa(upPort),
		"CREDPROXY_LISTEN=127.0.0.1:" + strconv.Itoa(port),
		"CREDPROXY_FORWARD_ADDR=127.0.0.1:" + strconv.Itoa(fwdPort),
		"CREDPROXY_ADMIN_ADDR=127.0.0.1:" + strconv.Itoa(adminPort),
		"CREDPROXY_LOG_LEVEL=warn",
		"SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem"),
	}
}

// gofloorEnv is the Go floor's environment: the token, and the upstream's
// CA through SSL_CERT_FILE as for credproxy.
func gofloorEnv(dir, token string) []string {
	return []string{"GOFLOOR_TOKEN=" + token, "SSL_CERT_FILE=" + filepath.Join(dir, "ca.pem")}
}

// writeFile writes a contender's configuration into dir.
func writeFile(dir, name, content string) (string, error) {
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, []byte(content), 0o600)
}
