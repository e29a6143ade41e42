package exchange

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/secret"
)

func serve(t *testing.T, h http.Handler) *url.URL {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func TestSplunkSessionLoginAndLogout(t *testing.T) {
	const password = "Spl-pa55-word-xyz"
	fake := demo.NewSplunk(demo.SplunkOptions{Email: "ops@example.com", Password: password, OrgID: "org-9"})
	src := &SplunkSession{BaseURL: serve(t, fake), Email: "ops@example.com", Password: secret.Ref{Value: secret.New(password)},
		OrgID: "org-9", Client: NewHTTPClient(), DefaultTTL: time.Minute}
	before := time.Now()
	tok, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	logins := fake.Logins()
	if len(logins) != 1 {
		t.Fatalf("logins = %d", len(logins))
	}
	if diff := cmp.Diff(map[string]any{"email": "ops@example.com", "password": password, "organizationId": "org-9"}, logins[0].Body); diff != "" {
		t.Errorf("login body (-want +got):\n%s", diff)
	}
	if _, sent := logins[0].Header["X-Sf-Token"]; sent || logins[0].Header.Get("Content-Type") != "application/json" {
		t.Errorf("login headers %v", logins[0].Header)
	}
	if !fake.Valid(tok.Value.Reveal()) {
		t.Error("session token not valid")
	}
	// 30 days from expiryMs, give or take the Date header's second.
	if life := tok.Expiry.Sub(before); life < 30*24*time.Hour-2*time.Second || life > 30*24*time.Hour+time.Second {
		t.Errorf("lifetime %v, want 30 days", life)
	}

	if err := src.Release(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if fake.Valid(tok.Value.Reveal()) || !cmp.Equal(fake.Deleted(), []string{tok.Value.Reveal()}) {
		t.Errorf("session not ended: %v", fake.Deleted())
	}
	if err := src.Release(context.Background(), tok); err != nil {
		t.Errorf("ending an unknown session (404) must count as ended: %v", err)
	}

	src.Password = secret.Ref{Value: secret.New("wrong-pa55w0rd-123")}
	_, err = src.Fetch(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 400 || e.Message != "Invalid email or password" || !e.Permanent() {
		t.Errorf("bad login: %v", err)
	}
}

func TestOAuth2ClientCredentialsRequest(t *testing.T) {
	const sec = "cl+ent/secret=9"
	tcs := []struct {
		desc     string
		body     bool
		wantAuth string
		wantForm url.Values
	}{
		{
			desc: "basic, RFC 6749 form-encoded", wantAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte("client-1:cl%2Bent%2Fsecret%3D9")),
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}, "audience": {"https://api.example"}},
		},
		{
			desc: "body", body: true,
			wantForm: url.Values{"grant_type": {"client_credentials"}, "scope": {"read write"}, "audience": {"https://api.example"},
				"client_id": {"client-1"}, "client_secret": {sec}},
		},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			fake := demo.NewOAuth2(demo.OAuth2Options{ClientID: "client-1", ClientSecret: sec, TTL: 10 * time.Minute})
			u := serve(t, fake)
			src := &OAuth2ClientCredentials{OAuth2Client{
				TokenURL: u.String() + "/oauth2/token", ClientID: "client-1", ClientSecret: secret.Ref{Value: secret.New(sec)},
				AuthStyleBody: tc.body, Scopes: []string{"read", "write"}, Audience: "https://api.example",
				Client: NewHTTPClient(), DefaultTTL: time.Minute,
			}}
			tok, err := src.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			req := fake.Requests()[0]
			if got := req.Header.Get("Authorization"); got != tc.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tc.wantAuth)
			}
			if diff := cmp.Diff(tc.wantForm, req.Form); diff != "" {
				t.Errorf("form (-want +got):\n%s", diff)
			}
			if !fake.Valid(tok.Value.Reveal()) || time.Until(tok.Expiry) < 9*time.Minute {
				t.Errorf("token %v", tok.Expiry)
			}
		})
	}
}

func TestOAuth2Errors(t *testing.T) {
	fake := demo.NewOAuth2(demo.OAuth2Options{ClientID: "c", ClientSecret: "right-secret-1", OmitExpiresIn: true})
	u := serve(t, fake)
	src := &OAuth2ClientCredentials{OAuth2Client{TokenURL: u.String(), ClientID: "c", ClientSecret: secret.Ref{Value: secret.New("wrong-secret-22")},
		Client: NewHTTPClient(), DefaultTTL: 7 * time.Minute}}
	_, err := src.Fetch(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Status != 401 || e.Code != "invalid_client" || e.Message != "Client authentication failed" || !e.Permanent() {
		t.Fatalf("err = %#v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-22") {
		t.Errorf("error leaks the secret")
	}
	// No expires_in: DEFAULT_TTL, never forever.
	src.ClientSecret = secret.Ref{Value: secret.New("right-secret-1")}
	tok, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(tok.Expiry); d < 6*time.Minute || d > 7*time.Minute {
		t.Errorf("lifetime without expires_in = %v, want DEFAULT_TTL 7m", d)
	}
}

func TestOAuth2RefreshTokenRotation(t *testing.T) {
	fake := demo.NewOAuth2(demo.OAuth2Options{RefreshToken: "rt-initial-0001", Rotate: true})
	u := serve(t, fake)
	dir := t.TempDir()
	file := filepath.Join(dir, "refresh-token")
	if err := os.WriteFile(file, []byte("rt-initial-0001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var rotations []bool
	src := &OAuth2RefreshToken{
		OAuth2Client: OAuth2Client{TokenURL: u.String(), Client: NewHTTPClient(), DefaultTTL: time.Minute},
		RefreshToken: secret.Ref{File: file, Var: "CREDPROXY_REFRESH_TOKEN_FILE"},
	}
	for i := range 3 {
		tok, err := src.Fetch(context.Background())
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if tok.Credential == nil || tok.Credential.Rotated == nil {
			t.Fatalf("refresh %d: the token does not say the refresh token rotated: %+v", i, tok.Credential)
		}
		r := tok.Credential.Rotated
		rotations = append(rotations, r.WrittenBack && r.Err == nil)
		b, _ := os.ReadFile(file)
		if strings.TrimSpace(string(b)) != fake.CurrentRefreshToken() {
			t.Fatalf("refresh %d: file holds %q, server expects the rotated token", i, b)
		}
	}
	if !cmp.Equal(rotations, []bool{true, true, true}) {
		t.Errorf("rotations %v", rotations)
	}
	reqs := fake.Requests()
	if reqs[0].Form.Get("grant_type") != "refresh_token" || reqs[0].Form.Get("refresh_token") != "rt-initial-0001" {
		t.Errorf("first refresh form %v", reqs[0].Form)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("written file mode %v", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}

	// Read-only file (a mounted Secret): rotation lives in memory.
	ro := &OAuth2RefreshToken{
		OAuth2Client: OAuth2Client{TokenURL: u.String(), Client: NewHTTPClient(), DefaultTTL: time.Minute},
		RefreshToken: secret.Ref{Value: secret.New(fake.CurrentRefreshToken())},
	}
	for i := range 2 {
		tok, err := ro.Fetch(context.Background())
		if err != nil {
			t.Fatalf("in-memory rotation %d: %v", i, err)
		}
		if c := tok.Credential; c == nil || c.Rotated == nil || c.Rotated.WrittenBack || c.Rotated.Err != nil {
			t.Errorf("in-memory rotation %d: %+v, want rotated, kept in memory", i, c)
		}
	}
}

// TestOAuth2RefreshTokenWriteBackSyncsDirectory: the rotated refresh
// token's write-back syncs the file's directory after the rename. Without
// that, a crash can leave the old entry on disk: the old refresh token,
// already used and so dead, and the route with it until re-provisioned.
func TestOAuth2RefreshTokenWriteBackSyncsDirectory(t *testing.T) {
	fake := demo.NewOAuth2(demo.OAuth2Options{RefreshToken: "rt-initial-0001", Rotate: true})
	u := serve(t, fake)
	dir := t.TempDir()
	file := filepath.Join(dir, "refresh-token")
	if err := os.WriteFile(file, []byte("rt-initial-0001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var synced []string
	src := &OAuth2RefreshToken{
		OAuth2Client: OAuth2Client{TokenURL: u.String(), Client: NewHTTPClient(), DefaultTTL: time.Minute},
		RefreshToken: secret.Ref{File: file, Var: "CREDPROXY_REFRESH_TOKEN_FILE"},
		syncDir: func(d string) error {
			// Called after the rename: the file holds the rotated token.
			b, _ := os.ReadFile(file)
			synced = append(synced, d+" holding "+strings.TrimSpace(string(b)))
			return nil
		},
	}
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Clean(dir) + " holding " + fake.CurrentRefreshToken()}
	if diff := cmp.Diff(want, synced); diff != "" {
		t.Errorf("directory syncs (-want +got):\n%s", diff)
	}
}

// TestOAuth2RefreshTokenExpiry: refresh_expires_in, when the provider
// sends it, says when the refresh token expires, counted from the request;
// 0 says it does not; an answer without it says nothing. The Token
// carries it (Token.Credential).
func TestOAuth2RefreshTokenExpiry(t *testing.T) {
	tcs := []struct {
		desc   string
		raw    string // refresh_expires_in; "" leaves it out
		called bool
		want   time.Duration // from the request; 0 with called: the zero time
	}{
		{desc: "30 days", raw: "2592000", called: true, want: 30 * 24 * time.Hour},
		{desc: "a string", raw: `"3600"`, called: true, want: time.Hour},
		{desc: "0: no expiry", raw: "0", called: true},
		{desc: "absent"},
		{desc: "not a number", raw: `"soon"`},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			opts := demo.OAuth2Options{RefreshToken: "rt-expiring-0001"}
			if tc.raw != "" {
				opts.RefreshExpiresIn = json.RawMessage(tc.raw)
			}
			u := serve(t, demo.NewOAuth2(opts))
			var got []time.Time
			src := &OAuth2RefreshToken{
				OAuth2Client: OAuth2Client{TokenURL: u.String(), Client: NewHTTPClient(), DefaultTTL: time.Minute},
				RefreshToken: secret.Ref{Value: secret.New("rt-expiring-0001")},
			}
			before := time.Now()
			tok, err := src.Fetch(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c := tok.Credential; c != nil && c.ExpiryReported {
				got = append(got, c.ExpiresAt)
			}
			after := time.Now()
			switch {
			case !tc.called && len(got) != 0:
				t.Errorf("called with %v", got)
			case tc.called && len(got) != 1:
				t.Errorf("called %d times", len(got))
			case tc.called && tc.want == 0 && !got[0].IsZero():
				t.Errorf("got %v, want the zero time", got[0])
			case tc.called && tc.want != 0 && (got[0].Before(before.Add(tc.want)) || got[0].After(after.Add(tc.want))):
				t.Errorf("got %v, want %v after the request", got[0], tc.want)
			}
		})
	}
}

func TestOAuth2TokenExchange(t *testing.T) {
	fake := demo.NewOAuth2(demo.OAuth2Options{SubjectToken: "projected-sa-jwt-2"})
	u := serve(t, fake)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("projected-sa-jwt-1"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &OAuth2TokenExchange{
		OAuth2Client:     OAuth2Client{TokenURL: u.String(), Audience: "https://api.example", Scopes: []string{"metrics"}, Client: NewHTTPClient(), DefaultTTL: time.Minute},
		SubjectTokenFile: file, SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt",
	}
	_, err := src.Fetch(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.Code != "invalid_grant" {
		t.Fatalf("stale subject token: %v", err)
	}
	// The kubelet rotates the projected token; the next exchange reads it.
	if err := os.WriteFile(file, []byte("projected-sa-jwt-2"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {"projected-sa-jwt-2"},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
		"audience":           {"https://api.example"},
		"scope":              {"metrics"},
	}
	reqs := fake.Requests()
	if diff := cmp.Diff(want, reqs[1].Form); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if reqs[1].Header.Get("Authorization") != "" {
		t.Errorf("no client configured, yet Authorization %q was sent", reqs[1].Header.Get("Authorization"))
	}
}
