package exchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// detailsToken is the API token of the details tests: long, so that the
// fake's 404 echoes a piece of it.
const detailsToken = "dtl-ApiTok-1a2b3c4d5e6f7a8b9c"

// detailsSource returns a CSPAPIToken against a fake CSP at base.
func detailsSource(base *url.URL) *CSPAPIToken {
	return &CSPAPIToken{BaseURL: base, APIToken: secret.Ref{Value: secret.New(detailsToken)}, Client: NewHTTPClient(), DefaultTTL: time.Minute}
}

// serveCSP serves csp on loopback and returns its base URL, with a
// trailing slash that must make no difference.
func serveCSP(t *testing.T, csp *demo.CSP) *url.URL {
	t.Helper()
	srv := httptest.NewServer(csp)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestCSPCredentialExpiry: the request is the one of docs/protocols.md 1e,
// and expiresAt is read in seconds and in milliseconds alike.
func TestCSPCredentialExpiry(t *testing.T) {
	expires := time.Now().Add(20 * 24 * time.Hour).Truncate(time.Second).UTC()
	for _, millis := range []bool{false, true} {
		t.Run(fmt.Sprintf("millis=%v", millis), func(t *testing.T) {
			csp := demo.NewCSP(demo.CSPOptions{APIToken: detailsToken, APITokenExpiresAt: expires, DetailsInMillis: millis})
			got, err := detailsSource(serveCSP(t, csp)).CredentialExpiry(context.Background())
			if err != nil || !got.Equal(expires) {
				t.Fatalf("CredentialExpiry = %v, %v; want %v", got, err, expires)
			}
			reqs := csp.DetailsRequests()
			if len(reqs) != 1 {
				t.Fatalf("%d details requests", len(reqs))
			}
			r := reqs[0]
			var body map[string]string
			if r.Method != "POST" || r.Path != demo.CSPDetailsPath || r.Header.Get("Content-Type") != "application/json" ||
				r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "" ||
				json.Unmarshal(r.Body, &body) != nil || len(body) != 1 || body["tokenValue"] != detailsToken {
				t.Errorf("request %s %s %v %s", r.Method, r.Path, r.Header, r.Body)
			}
			if len(csp.Requests()) != 0 {
				t.Error("a lookup exchanged a token")
			}
		})
	}
}

func TestCSPCredentialExpiryValues(t *testing.T) {
	tcs := []struct {
		desc, expiresAt string
		want            time.Time
		wantErr         string
	}{
		{desc: "seconds", expiresAt: `1790000000`, want: time.Unix(1790000000, 0)},
		{desc: "milliseconds", expiresAt: `1790000000123`, want: time.UnixMilli(1790000000123)},
		{desc: "the last second", expiresAt: `1000000000000`, want: time.Unix(1e12, 0)},
		{desc: "the first millisecond", expiresAt: `1000000000001`, want: time.UnixMilli(1e12 + 1)},
		{desc: "fractional seconds", expiresAt: `1790000000.5`, want: time.Unix(1790000000, 5e8)},
		{desc: "a string", expiresAt: `"1790000000"`, want: time.Unix(1790000000, 0)},
		{desc: "null: no expiry", expiresAt: `null`},
		{desc: "zero: no expiry", expiresAt: `0`},
		{desc: "negative: no expiry", expiresAt: `-1`},
		{desc: "absent: no expiry"},
		{desc: "a date", expiresAt: `"2026-09-30"`, wantErr: `expiresAt "2026-09-30" is not a time in seconds or milliseconds`},
		{desc: "absurd", expiresAt: `1e300`, wantErr: "out of range"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			body := `{"token":"` + detailsToken + `","tokenName":"ci"`
			if tc.expiresAt != "" {
				body += `,"expiresAt":` + tc.expiresAt
			}
			base := startFake(t, &fakeEndpoint{body: body + "}"})
			got, err := detailsSource(base).CredentialExpiry(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestCSPCredentialExpiryFailures: every way the lookup fails is an error
// the watcher can act on (status, Retry-After, a refused connection), and
// none holds a piece of the API token, which the fake echoes in its 404
// and which an answer may carry in its token field.
func TestCSPCredentialExpiryFailures(t *testing.T) {
	tcs := []struct {
		desc       string
		setup      func(csp *demo.CSP)
		token      string // the API token sent; default detailsToken
		wantStatus int
		wantRetry  time.Duration
	}{
		{desc: "404 unknown token, echoed", token: detailsToken + "-other", wantStatus: 404},
		{desc: "404 expired token", setup: nil, wantStatus: 404},
		{desc: "429", setup: func(c *demo.CSP) {
			c.SetDetailsFault(demo.Fault{Status: 429, Body: `{"statusCode":429,"message":"Too many requests for ` + detailsToken + `"}`, RetryAfter: "90"})
		}, wantStatus: 429, wantRetry: 90 * time.Second},
		{desc: "500", setup: func(c *demo.CSP) {
			c.SetDetailsFault(demo.Fault{Status: 500, Body: `{"statusCode":500,"message":"boom","requestId":"r-1"}`})
		}, wantStatus: 500},
		{desc: "on-premises without the endpoint", setup: func(c *demo.CSP) {
			c.SetDetailsFault(demo.Fault{Status: 404, Body: "<html>Not Found</html>", ContentType: "text/html"})
		}, wantStatus: 404},
		{desc: "a 200 that echoes the token and no usable expiry", setup: func(c *demo.CSP) {
			c.SetDetailsFault(demo.Fault{Status: 200, Body: `{"token":"` + detailsToken + `","expiresAt":"` + detailsToken + `"}`})
		}, wantStatus: 200},
		{desc: "network: dropped", setup: func(c *demo.CSP) { c.SetDetailsFault(demo.Fault{Drop: true}) }},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			opts := demo.CSPOptions{APIToken: detailsToken}
			if tc.desc == "404 expired token" {
				opts.APITokenExpiresAt = time.Now().Add(-time.Second)
			}
			csp := demo.NewCSP(opts)
			if tc.setup != nil {
				tc.setup(csp)
			}
			src := detailsSource(serveCSP(t, csp))
			if tc.token != "" {
				src.APIToken = secret.Ref{Value: secret.New(tc.token)}
			}
			got, err := src.CredentialExpiry(context.Background())
			if err == nil {
				t.Fatalf("got %v, want an error", got)
			}
			var e *Error
			switch {
			case tc.wantStatus == 0 && errors.As(err, &e):
				t.Errorf("a network failure is an *Error: %v", err)
			case tc.wantStatus != 0 && (!errors.As(err, &e) || e.Status != tc.wantStatus || e.RetryAfter != tc.wantRetry):
				t.Errorf("err %v, want an *Error with status %d, Retry-After %v", err, tc.wantStatus, tc.wantRetry)
			}
			logtest.AssertNoSecrets(t, "error", fmt.Sprintf("%v %+v", err, err), detailsToken, detailsToken+"-other")
		})
	}

	// A refused connection.
	_, err := detailsSource(refusedURL(t)).CredentialExpiry(context.Background())
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("refused: %v", err)
	}
}

// TestCSPCredentialExpiryReadsTheFileAgain: a rotated API token file is
// what the next lookup asks about.
func TestCSPCredentialExpiryReadsTheFileAgain(t *testing.T) {
	dir := newK8sSecretDir(t, "token", "old-"+detailsToken)
	csp := demo.NewCSP(demo.CSPOptions{APIToken: detailsToken, APITokenExpiresAt: time.Now().Add(48 * time.Hour)})
	src := detailsSource(serveCSP(t, csp))
	src.APIToken = secret.Ref{File: filepath.Join(dir.dir, "token"), Var: "CREDPROXY_CSP_API_TOKEN_FILE"}
	if _, err := src.CredentialExpiry(context.Background()); err == nil {
		t.Fatal("the old token is known")
	}
	dir.update(t, map[string]string{"token": detailsToken})
	if got, err := src.CredentialExpiry(context.Background()); err != nil || time.Until(got) < 47*time.Hour {
		t.Errorf("after rotation: %v, %v", got, err)
	}
	if rs := csp.DetailsRequests(); len(rs) != 2 || !strings.Contains(string(rs[1].Body), detailsToken) {
		t.Errorf("requests %d", len(rs))
	}
}
