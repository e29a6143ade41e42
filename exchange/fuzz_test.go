package exchange

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/credproxy/credproxy/internal/secret"
)

// The fuzz targets feed arbitrary answers to each Source through an
// http.Client whose transport answers in memory: the whole Fetch path runs
// (status handling, size cap, service-error parsing, token parsing and
// checks) without a socket, fast enough to fuzz. Plain `go test` runs the
// seeds below and those in testdata/fuzz; `go test -fuzz=FuzzX` explores.

// fuzzSecret is the credential each fuzzed Source sends. Seeds echo it back
// in messages so the redaction is exercised.
const fuzzSecret = "fz-S3cret-0123456789-abcdef"

// cannedTransport answers every request with one response.
type cannedTransport struct {
	status int
	header http.Header
	body   []byte
}

func (c cannedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	return &http.Response{
		StatusCode: c.status, Status: http.StatusText(c.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: c.header, Body: io.NopCloser(bytes.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: req,
	}, nil
}

func cannedClient(status int, header http.Header, body []byte) *http.Client {
	return &http.Client{
		Transport:     cannedTransport{status: status, header: header, body: body},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fuzzStatus maps any fuzzed number to a status an HTTP/1.1 server can send.
func fuzzStatus(n uint16) int { return 200 + int(n)%400 }

var fuzzBase = &url.URL{Scheme: "https", Host: "idp.invalid", Path: "/base"}

const fuzzDefaultTTL = 7 * time.Minute

// checkFetch asserts what every Source promises for any answer: a usable
// token or an error, never both; a token that fits in a header with an
// expiry in the future and within MaxLifetime; an error that never quotes
// the credential and whose service-provided parts are clean for a log.
func checkFetch(t *testing.T, before time.Time, tok Token, err error) {
	t.Helper()
	after := time.Now()
	if err != nil {
		if !tok.Value.Empty() || !tok.Expiry.IsZero() {
			t.Fatalf("both a token and an error: %v", err)
		}
		if leak := leakedPiece(err.Error(), []string{fuzzSecret}); leak != "" {
			t.Fatalf("error quotes %q of the credential: %q", leak, err.Error())
		}
		var e *Error
		if errors.As(err, &e) {
			for name, s := range map[string]string{"Code": e.Code, "Message": e.Message, "RequestID": e.RequestID} {
				if strings.ContainsFunc(s, unicode.IsControl) {
					t.Fatalf("%s holds a control character (log injection): %q", name, s)
				}
				if len(s) > maxMessageLen+len("...") {
					t.Fatalf("%s is %d bytes, more than the bound", name, len(s))
				}
			}
			if e.RetryAfter < 0 || e.RetryAfter > 24*time.Hour {
				t.Fatalf("RetryAfter %v outside 0-24h", e.RetryAfter)
			}
			if e.Permanent() != (e.Status >= 300 && e.Status < 500 && e.Status != 408 && e.Status != 425 && e.Status != 429) {
				t.Fatalf("status %d: Permanent() = %v", e.Status, e.Permanent())
			}
		}
		return
	}
	if cerr := checkToken(tok.Value.Reveal()); cerr != nil {
		t.Fatalf("token accepted that cannot go in a header: %v", cerr)
	}
	if !tok.Expiry.After(before) {
		t.Fatalf("token accepted with expiry %v, not after the request at %v", tok.Expiry, before)
	}
	if tok.Expiry.Sub(after) > MaxLifetime {
		t.Fatalf("lifetime %v beyond MaxLifetime", tok.Expiry.Sub(before))
	}
}

// tokenResponseSeeds are answers of token endpoints, good and broken.
var tokenResponseSeeds = []struct {
	status      uint16
	contentType string
	retryAfter  string
	body        string
}{
	{0, "application/json", "", `{"id_token":"i","token_type":"bearer","expires_in":1799,"scope":"*","access_token":"at-1.abc","refresh_token":"r"}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":"60"}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":0}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":-5}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":1e300}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":"soon"}`},
	{0, "application/json", "", `{"access_token":"a"}`},
	{0, "application/json", "", `{"token_type":"bearer","expires_in":60}`},
	{0, "application/json", "", `{"access_token":"a\r\nX-Evil: 1"}`},
	{0, "application/json", "", `{"access_token":"a","token_type":"mac"}`},
	{0, "application/json", "", `{"access_token":`},
	{0, "text/html", "", `<html><body>Sign in</body></html>`},
	{0, "application/x-www-form-urlencoded", "", `access_token=a&token_type=bearer&expires_in=60`},
	{0, "application/json", "", `{"error":"invalid_grant","error_description":"200 with an error"}`},
	{200, "application/json", "", `{"error":"invalid_client","error_description":"Client authentication failed"}`},
	{200, "application/json", "", `{"statusCode":400,"message":"invalid_grant: Invalid refresh token: ` + fuzzSecret + `","cspErrorCode":"","requestId":"r-1"}`},
	{201, "application/json", "", `{"error":"invalid_client","error_description":"bad ` + fuzzSecret + `\nlevel=info forged"}`},
	{201, "application/json", "", `{"error":"invalid_client","error_description":"bad ` + strings.ToUpper(fuzzSecret[:9]) + `\u0001` + fuzzSecret[9:] + `"}`},
	{200, "application/json", "", `{"message":"Authorization: Basic ` + base64.StdEncoding.EncodeToString([]byte("app:"+fuzzSecret)) + `"}`},
	{200, "application/json", "", `{"message":"client_secret=` + url.QueryEscape(fuzzSecret) + `","requestId":"` + fuzzSecret[3:12] + `"}`},
	{201, "application/x-www-form-urlencoded", "", "error=invalid_client&error_description=bad+" + url.QueryEscape(fuzzSecret)},
	{201, "text/plain", "", "error=" + url.QueryEscape(fuzzSecret) + "&error_description=%ZZ"},
	{0, "application/json", "", `{"access_token":"a","token_type":"` + fuzzSecret + `"}`},
	{0, "application/json", "", `{"access_token":"a","expires_in":"` + fuzzSecret[:10] + `"}`},
	{229, "application/json", "120", `{"message":"slow down"}`},
	{229, "application/json", "Wed, 21 Oct 2099 07:28:00 GMT", `{"message":"slow down"}`},
	{300, "text/html", "", `<html><body><h1>502 Bad Gateway</h1></body></html>`},
	{301, "application/json", "", `{"code":500,"message":"internal"}`},
	{102, "", "", ``},
	{208, "application/json", "", `{"message":"` + strings.Repeat("é", 400) + `"}`},
}

func FuzzCSPAPITokenResponse(f *testing.F) {
	for _, s := range tokenResponseSeeds {
		f.Add(s.status, s.contentType, s.retryAfter, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, contentType, retryAfter string, body []byte) {
		src := &CSPAPIToken{BaseURL: fuzzBase, APIToken: secret.Ref{Value: secret.New(fuzzSecret)},
			Client: cannedClient(fuzzStatus(status), http.Header{"Content-Type": {contentType}, "Retry-After": {retryAfter}}, body), DefaultTTL: fuzzDefaultTTL}
		before := time.Now()
		tok, err := src.Fetch(context.Background())
		checkFetch(t, before, tok, err)
	})
}

func FuzzCSPOAuthAppResponse(f *testing.F) {
	for _, s := range tokenResponseSeeds {
		f.Add(s.status, s.contentType, s.retryAfter, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, contentType, retryAfter string, body []byte) {
		src := &CSPOAuthApp{BaseURL: fuzzBase, ClientID: "app", ClientSecret: secret.Ref{Value: secret.New(fuzzSecret)}, OrgID: "org",
			Client: cannedClient(fuzzStatus(status), http.Header{"Content-Type": {contentType}, "Retry-After": {retryAfter}}, body), DefaultTTL: fuzzDefaultTTL}
		before := time.Now()
		tok, err := src.Fetch(context.Background())
		checkFetch(t, before, tok, err)
	})
}

func FuzzOAuth2TokenResponse(f *testing.F) {
	for _, s := range tokenResponseSeeds {
		f.Add(s.status, s.contentType, s.retryAfter, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, contentType, retryAfter string, body []byte) {
		src := &OAuth2ClientCredentials{OAuth2Client{TokenURL: "https://idp.invalid/token", ClientID: "c", ClientSecret: secret.Ref{Value: secret.New(fuzzSecret)},
			Client: cannedClient(fuzzStatus(status), http.Header{"Content-Type": {contentType}, "Retry-After": {retryAfter}}, body), DefaultTTL: fuzzDefaultTTL}}
		before := time.Now()
		tok, err := src.Fetch(context.Background())
		checkFetch(t, before, tok, err)
	})
}

func FuzzSplunkSessionResponse(f *testing.F) {
	future := time.Now().Add(30 * 24 * time.Hour).UnixMilli()
	for _, s := range []struct {
		status uint16
		date   string
		body   string
	}{
		{0, "", `{"accessToken":"sess-1","expiryMs":` + strconv.FormatInt(future, 10) + `}`},
		{0, "Mon, 02 Jan 2006 15:04:05 GMT", `{"accessToken":"sess-1","expiryMs":1136214245000}`},
		{0, "", `{"accessToken":"sess-1","expiryMs":-1}`},
		{0, "", `{"accessToken":"sess-1","expiryMs":9223372036854775807}`},
		{0, "", `{"accessToken":"sess-1","expiryMs":"soon"}`},
		{0, "", `{"accessToken":"sess-1"}`},
		{0, "", `{"expiryMs":1}`},
		{0, "", `{"accessToken":"a b"}`},
		{0, "", `<html>`},
		{200, "", `{"code":401,"message":"Invalid email or password ` + fuzzSecret + `"}`},
		{229, "", `{"code":429,"message":"rate limited"}`},
		{300, "", `{"code":503,"message":"unavailable"}`},
	} {
		f.Add(s.status, s.date, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, date string, body []byte) {
		src := &SplunkSession{BaseURL: fuzzBase, Email: "ops@example.com", Password: secret.Ref{Value: secret.New(fuzzSecret)},
			Client: cannedClient(fuzzStatus(status), http.Header{"Content-Type": {"application/json"}, "Date": {date}}, body), DefaultTTL: fuzzDefaultTTL}
		before := time.Now()
		tok, err := src.Fetch(context.Background())
		checkFetch(t, before, tok, err)
	})
}

// FuzzServiceError: any non-2xx answer becomes an *Error with the status,
// never quoting the credential, clean for a log, Retry-After bounded.
func FuzzServiceError(f *testing.F) {
	for _, s := range []struct {
		status     uint16
		retryAfter string
		body       string
	}{
		{200, "", `{"error":"invalid_grant","error_description":"The refresh token is invalid"}`},
		{201, "", `{"error":"invalid_client","error_description":"Client authentication failed","error_uri":"https://idp/doc"}`},
		{200, "", `{"statusCode":400,"message":"invalid_grant: Invalid refresh token: ` + fuzzSecret + `","cspErrorCode":"x.y","requestId":"r-1"}`},
		{229, "7", `{"error":"slow_down"}`},
		{229, "Wed, 21 Oct 2099 07:28:00 GMT", ``},
		{229, "-3", `{}`},
		{300, "", `<html><body><h1>500 Internal Server Error</h1></body></html>`},
		{303, "99999999999999999999", `{"message":"` + strings.Repeat("x\n", 300) + `"}`},
		{202, "", `{"error":5,"error_description":["a"]}`},
		{202, "", `{"message":"\u0000\u001b[31mred"}`},
	} {
		f.Add(s.status, s.retryAfter, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status uint16, retryAfter string, body []byte) {
		st := 400 + int(status)%200
		resp := &http.Response{StatusCode: st, Header: http.Header{"Retry-After": {retryAfter}, "Content-Type": {"application/json"}}}
		e := call{op: "fuzz", sent: secret.NewCredentials(secret.New(fuzzSecret))}.serviceError(resp, body)
		if e.Status != st || e.Op != "fuzz" {
			t.Fatalf("error %+v lost the status or op", e)
		}
		checkFetch(t, time.Now(), Token{}, e)
	})
}
