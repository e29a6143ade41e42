package credexpiry

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/demo"
	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/secret"
)

// apiToken is the CSP API token of the tests; the fake CSP echoes pieces
// of it, and its details answer carries it whole.
const apiToken = "cx-ApiTok-0f1e2d3c4b5a69788796"

// handlerTransport serves requests with a handler in memory, so that the
// real CSP lookup runs against the fake CSP inside a synctest bubble,
// where no real network may be used. A handler that aborts (a fault with
// Drop) is a connection reset.
type handlerTransport struct {
	mu sync.Mutex // guards h, which a test may swap
	h  http.Handler
}

func (ht *handlerTransport) swap(h http.Handler) {
	ht.mu.Lock()
	defer ht.mu.Unlock()
	ht.h = h
}

func (ht *handlerTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	ht.mu.Lock()
	h := ht.h
	ht.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			if r != http.ErrAbortHandler {
				panic(r)
			}
			resp, err = nil, errors.New("read: connection reset by peer")
		}
	}()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// harness is a Watcher asking a fake CSP in memory, with its logs and the
// expiries it reported through OnChange.
type harness struct {
	csp       *demo.CSP
	transport *handlerTransport
	w         *Watcher
	logs      *logtest.Capture

	mu      sync.Mutex
	changes []time.Time
}

// newHarness builds a Watcher on a fake CSP made with cspOpts (its API
// token apiToken, its clock the bubble's); opts.Lookup is set to the real
// CSP lookup unless noLookup. It must be called inside the bubble.
func newHarness(t *testing.T, cspOpts demo.CSPOptions, opts Options, noLookup bool) *harness {
	t.Helper()
	cspOpts.APIToken = apiToken
	h := &harness{csp: demo.NewCSP(cspOpts)}
	h.transport = &handlerTransport{h: h.csp}
	log, logs := logtest.New(t)
	h.logs = logs
	if !noLookup {
		opts.Lookup = &exchange.CSPAPIToken{
			BaseURL: &url.URL{Scheme: "https", Host: "csp.example"}, APIToken: secret.Ref{Value: secret.New(apiToken)},
			Client: &http.Client{Transport: h.transport}, DefaultTTL: time.Minute,
		}
	}
	opts.Route, opts.Kind, opts.Logger = "wf", "csp-api-token", log
	opts.Rand = func() float64 { return 0.5 } // no jitter: exactly LookupEvery
	opts.OnChange = func(at time.Time) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.changes = append(h.changes, at)
	}
	h.w = New(opts)
	return h
}

// run starts the Watcher; it stops when the test's bubble ends.
func (h *harness) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// logLine is the part of a JSON log line the tests read.
type logLine struct {
	Level, Msg, Threshold, Source, Route, Kind string
	DaysLeft                                   int `json:"days_left"`
}

// lines returns the captured lines at level (all when empty).
func (h *harness) lines(t *testing.T, level string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if level == "" || l.Level == level {
			out = append(out, l)
		}
	}
	return out
}

// thresholds returns the threshold of every warning and error logged.
func (h *harness) thresholds(t *testing.T) []string {
	var out []string
	for _, l := range h.lines(t, "") {
		if l.Level == "warn" || l.Level == "error" {
			out = append(out, l.Level+" "+l.Threshold)
		}
	}
	return out
}

// sleepTo advances the bubble's clock to at and lets everything settle.
func sleepTo(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

// TestLookupEverySixHours: the expiry is looked up at start and every 6
// hours exactly (jitter pinned), and reported once while it does not
// change. (Both units are tested in exchange: the bubble's clock starts
// in 2000, when a time in milliseconds is under the 1e12 that tells the
// units apart.)
func TestLookupEverySixHours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		expires := start.Add(90 * day).Truncate(time.Second)
		h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: expires}, Options{}, false)
		h.run(t)
		synctest.Wait()
		if got := h.w.Status(); !got.ExpiresAt.Equal(expires) || got.Source != SourceLookup {
			t.Fatalf("Status %+v, want %v from the lookup", got, expires)
		}
		sleepTo(start.Add(LookupEvery - time.Nanosecond))
		if n := len(h.csp.DetailsRequests()); n != 1 {
			t.Errorf("%d lookups before 6 h, want 1", n)
		}
		sleepTo(start.Add(LookupEvery))
		if n := len(h.csp.DetailsRequests()); n != 2 {
			t.Errorf("%d lookups at 6 h, want 2", n)
		}
		sleepTo(start.Add(4 * LookupEvery))
		reqs := h.csp.DetailsRequests()
		if len(reqs) != 5 {
			t.Errorf("%d lookups in a day, want 5", len(reqs))
		}
		for i, r := range reqs {
			if want := start.Add(time.Duration(i) * LookupEvery); !r.Time.Equal(want) {
				t.Errorf("lookup %d at %v, want %v", i, r.Time.Sub(start), want.Sub(start))
			}
		}
		if len(h.csp.Requests()) != 0 {
			t.Error("a lookup exchanged a token")
		}
		h.mu.Lock()
		if diff := cmp.Diff([]time.Time{expires}, h.changes); diff != "" {
			t.Errorf("OnChange (-want +got):\n%s", diff)
		}
		h.mu.Unlock()
		if th := h.thresholds(t); len(th) != 0 {
			t.Errorf("warnings with 90 days left: %v", th)
		}
		logtest.AssertNoSecrets(t, "logs", h.logs.String(), apiToken)
	})
}

// TestWarningsOncePerThreshold: a warning at exactly 30, 7 and 1 days left
// and an error at the expiry, each once, whatever else happens (lookups
// every 6 hours that say the same, and afterwards the CSP's 404 for the
// expired token).
func TestWarningsOncePerThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		expires := start.Add(31 * day)
		h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: expires}, Options{}, false)
		h.run(t)
		synctest.Wait()
		steps := []struct {
			at   time.Time
			want []string
		}{
			{expires.Add(-30*day - time.Nanosecond), nil},
			{expires.Add(-30 * day), []string{"warn 30d"}},
			{expires.Add(-7*day - time.Nanosecond), []string{"warn 30d"}},
			{expires.Add(-7 * day), []string{"warn 30d", "warn 7d"}},
			{expires.Add(-day - time.Nanosecond), []string{"warn 30d", "warn 7d"}},
			{expires.Add(-day), []string{"warn 30d", "warn 7d", "warn 1d"}},
			{expires.Add(-time.Nanosecond), []string{"warn 30d", "warn 7d", "warn 1d"}},
			{expires, []string{"warn 30d", "warn 7d", "warn 1d", "error expired"}},
			{expires.Add(20 * day), []string{"warn 30d", "warn 7d", "warn 1d", "error expired"}},
		}
		for _, s := range steps {
			sleepTo(s.at)
			if diff := cmp.Diff(s.want, h.thresholds(t)); diff != "" {
				t.Fatalf("at %v before expiry (-want +got):\n%s", expires.Sub(s.at), diff)
			}
		}
		warns := h.lines(t, "warn")
		if warns[1].DaysLeft != 7 || warns[1].Source != SourceLookup || warns[1].Route != "wf" || warns[1].Kind != "csp-api-token" {
			t.Errorf("7-day warning %+v", warns[1])
		}
		// The expired token is unknown to CSP: lookups fail (at debug)
		// and the last known expiry stays.
		if got := h.w.Status(); !got.ExpiresAt.Equal(expires) {
			t.Errorf("Status after expiry %+v", got)
		}
		if n := len(h.lines(t, "debug")); n == 0 || !strings.Contains(h.logs.String(), "credential expiry lookup failed") {
			t.Error("the failed lookups after the expiry are not logged at debug")
		}
		logtest.AssertNoSecrets(t, "logs", h.logs.String(), apiToken)
	})
}

// TestWarningAtStart: starting with 5 days left logs the 7-day warning
// (the highest reached) once, not the 30-day one as well.
func TestWarningAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := newHarness(t, demo.CSPOptions{}, Options{Configured: start.Add(5 * day)}, true)
		h.run(t)
		synctest.Wait()
		if diff := cmp.Diff([]string{"warn 7d"}, h.thresholds(t)); diff != "" {
			t.Errorf("at start (-want +got):\n%s", diff)
		}
		if got := h.w.Status(); got.Source != SourceConfig {
			t.Errorf("Status %+v", got)
		}
		h.mu.Lock()
		if len(h.changes) != 1 || !h.changes[0].Equal(start.Add(5*day)) {
			t.Errorf("OnChange %v, want the configured expiry from New", h.changes)
		}
		h.mu.Unlock()
		sleepTo(start.Add(4 * day))
		sleepTo(start.Add(5 * day))
		if diff := cmp.Diff([]string{"warn 7d", "warn 1d", "error expired"}, h.thresholds(t)); diff != "" {
			t.Errorf("later (-want +got):\n%s", diff)
		}
	})
}

// TestRotationRearmsTheWarnings: a rotated credential (the lookup answers
// a later expiry) is warned about again when it nears its own expiry.
func TestRotationRearmsTheWarnings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: start.Add(3 * day)}, Options{}, false)
		h.run(t)
		synctest.Wait()
		if diff := cmp.Diff([]string{"warn 7d"}, h.thresholds(t)); diff != "" {
			t.Fatalf("at start (-want +got):\n%s", diff)
		}
		// The operator rotates the token: the same token value in the fake,
		// with a new expiry 60 days out, seen at the next lookup.
		rotated := start.Add(60 * day)
		h.transport.swap(demo.NewCSP(demo.CSPOptions{APIToken: apiToken, APITokenExpiresAt: rotated}))
		sleepTo(start.Add(LookupEvery))
		if got := h.w.Status(); !got.ExpiresAt.Equal(rotated) {
			t.Fatalf("after rotation %+v", got)
		}
		if !strings.Contains(h.logs.String(), `"msg":"credential expiry known"`) {
			t.Error("the new expiry is not logged at info")
		}
		sleepTo(rotated.Add(-30 * day))
		if diff := cmp.Diff([]string{"warn 7d", "warn 30d"}, h.thresholds(t)); diff != "" {
			t.Errorf("the rotated credential at 30 days (-want +got):\n%s", diff)
		}
	})
}

// TestLookupFailures: a failed lookup is logged at debug only, retried on
// the schedule its kind of failure calls for, and shows nothing of the
// API token the fake echoes.
func TestLookupFailures(t *testing.T) {
	echo := `{"statusCode":%d,"message":"refused ` + apiToken + `","requestId":"r-` + apiToken[3:15] + `"}`
	body := func(status int) string { return fmt.Sprintf(echo, status) }
	tcs := []struct {
		desc  string
		fault demo.Fault
		// want are the times of the first lookups, from the start.
		want []time.Duration
	}{
		{desc: "404: not before the regular lookup", fault: demo.Fault{Status: 404, Body: body(404)},
			want: []time.Duration{0, LookupEvery, 2 * LookupEvery}},
		{desc: "on-premises without the endpoint", fault: demo.Fault{Status: 404, Body: "<html>no</html>", ContentType: "text/html"},
			want: []time.Duration{0, LookupEvery}},
		{desc: "429 with Retry-After", fault: demo.Fault{Status: 429, Body: body(429), RetryAfter: "150"},
			want: []time.Duration{0, 150 * time.Second, 300 * time.Second, 540 * time.Second}}, // then the backoff is longer
		{desc: "429 with a Retry-After of a day: at most 6 h", fault: demo.Fault{Status: 429, Body: body(429), RetryAfter: "86400"},
			want: []time.Duration{0, LookupEvery, 2 * LookupEvery}},
		{desc: "429 with a Retry-After of 1 s: at least 1 min", fault: demo.Fault{Status: 429, Body: body(429), RetryAfter: "1"},
			want: []time.Duration{0, time.Minute, 3 * time.Minute}},
		{desc: "429 without Retry-After: backoff", fault: demo.Fault{Status: 429, Body: body(429)},
			want: []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute}},
		{desc: "500: backoff", fault: demo.Fault{Status: 500, Body: body(500)},
			want: []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute}},
		{desc: "network", fault: demo.Fault{Drop: true},
			want: []time.Duration{0, time.Minute, 3 * time.Minute}},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: start.Add(100 * day)}, Options{}, false)
				h.csp.SetDetailsFault(tc.fault)
				h.run(t)
				sleepTo(start.Add(tc.want[len(tc.want)-1]))
				var got []time.Duration
				for _, r := range h.csp.DetailsRequests() {
					got = append(got, r.Time.Sub(start))
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("lookups (-want +got):\n%s", diff)
				}
				if st := h.w.Status(); !st.ExpiresAt.IsZero() {
					t.Errorf("Status %+v after failures only", st)
				}
				for _, l := range h.lines(t, "") {
					if l.Level != "debug" {
						t.Errorf("a failed lookup logged at %s: %q", l.Level, l.Msg)
					}
				}
				if !strings.Contains(h.logs.String(), "credential expiry lookup failed") {
					t.Error("the failure is not logged at debug")
				}
				logtest.AssertNoSecrets(t, "logs", h.logs.String(), apiToken)

				// The service recovers: the next lookup learns the expiry.
				h.csp.ClearDetailsFault()
				sleepTo(start.Add(tc.want[len(tc.want)-1] + LookupEvery))
				if st := h.w.Status(); st.Source != SourceLookup {
					t.Errorf("Status %+v after recovery", st)
				}
			})
		})
	}
}

// TestEarliestWins: of the configured and looked-up expiries, the earlier
// is the one shown and warned about.
func TestEarliestWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: start.Add(20 * day)}, Options{Configured: start.Add(40 * day)}, false)
		h.run(t)
		synctest.Wait()
		if got := h.w.Status(); !got.ExpiresAt.Equal(start.Add(20*day)) || got.Source != SourceLookup {
			t.Errorf("Status %+v, want the lookup's 20 days", got)
		}
		h2 := newHarness(t, demo.CSPOptions{APITokenExpiresAt: start.Add(20 * day)}, Options{Configured: start.Add(10 * day)}, false)
		h2.run(t)
		synctest.Wait()
		if got := h2.w.Status(); !got.ExpiresAt.Equal(start.Add(10*day)) || got.Source != SourceConfig {
			t.Errorf("Status %+v, want the configured 10 days", got)
		}
	})
}

// TestObserveTellsDeadlinesFromWindows: an exchange's expiry counts once a
// second answer shows it is a deadline; one that slides with every refresh
// (an idle timeout) never does; zero forgets it.
func TestObserveTellsDeadlinesFromWindows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, demo.CSPOptions{}, Options{}, true)
		h.run(t)
		// A 30-minute idle window, refreshed every 3 minutes.
		for range 5 {
			h.w.Observe(time.Now().Add(30 * time.Minute))
			synctest.Wait()
			if st := h.w.Status(); !st.ExpiresAt.IsZero() {
				t.Fatalf("a sliding window is taken as the expiry: %+v", st)
			}
			time.Sleep(3 * time.Minute)
		}
		if th := h.thresholds(t); len(th) != 0 {
			t.Errorf("a sliding window warned: %v", th)
		}
		// The session's absolute limit binds: the same deadline twice.
		deadline := time.Now().Add(20 * time.Minute)
		h.w.Observe(deadline)
		time.Sleep(3 * time.Minute)
		h.w.Observe(deadline.Add(-time.Second))
		synctest.Wait()
		if st := h.w.Status(); !st.ExpiresAt.Equal(deadline.Add(-time.Second)) || st.Source != SourceExchange {
			t.Fatalf("a deadline is not taken: %+v", st)
		}
		if diff := cmp.Diff([]string{"warn 1d"}, h.thresholds(t)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		sleepTo(deadline)
		if diff := cmp.Diff([]string{"warn 1d", "error expired"}, h.thresholds(t)); diff != "" {
			t.Errorf("at the deadline (-want +got):\n%s", diff)
		}
		// A refresh token without expiry (Keycloak's offline token).
		h.w.Observe(time.Time{})
		if st := h.w.Status(); !st.ExpiresAt.IsZero() {
			t.Errorf("after a zero report: %+v", st)
		}
		h.mu.Lock()
		if n := len(h.changes); n != 3 || !h.changes[0].Equal(deadline) || !h.changes[2].IsZero() {
			t.Errorf("OnChange %v", h.changes)
		}
		h.mu.Unlock()
	})
}

// TestLookupJitter: the period is 6 h give or take 10%, from Rand.
func TestLookupJitter(t *testing.T) {
	for r, want := range map[float64]time.Duration{0: 5*time.Hour + 24*time.Minute, 0.5: LookupEvery, 0.75: 6*time.Hour + 18*time.Minute} {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			h := newHarness(t, demo.CSPOptions{APITokenExpiresAt: start.Add(90 * day)}, Options{}, false)
			h.w.opts.Rand = func() float64 { return r }
			h.run(t)
			sleepTo(start.Add(7 * time.Hour))
			reqs := h.csp.DetailsRequests()
			if len(reqs) != 2 || !reqs[1].Time.Equal(start.Add(want)) {
				t.Errorf("Rand %v: second lookup after %v, want %v", r, reqs[len(reqs)-1].Time.Sub(start), want)
			}
		})
	}
}
