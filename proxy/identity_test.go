package proxy

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credproxy/credproxy/internal/logtest"
	"github.com/credproxy/credproxy/internal/reqinfo"
)

// asIdentity is what the edge's gate does for a caller with an identity:
// it puts a reqinfo.Info naming it in the request's context.
func asIdentity(id string, next http.Handler, seen *reqinfo.Info) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &reqinfo.Info{Identity: id}
		next.ServeHTTP(w, r.WithContext(reqinfo.With(r.Context(), info)))
		*seen = *info
	})
}

// TestStrayAnswerNeverCrossesIdentity: one route, two callers of
// different identity (key:A, key:B) behind one reverse proxy. A's
// request gets an extra answer from the upstream; B's next request never
// receives it, as each identity has pools of its own. The token sent is
// recorded in the request's Info.
func TestStrayAnswerNeverCrossesIdentity(t *testing.T) {
	for _, path := range []string{"/stray-later", "/stray-now"} {
		t.Run(path[1:], func(t *testing.T) {
			log, _ := logtest.New(t)
			api := newRawAPI(t, "https", strayTiming)
			tr := wireTransport(t, api)
			h := NewReverse(wireRoute("r", "https", api), tr, NewMetrics(prometheus.NewRegistry()), log)
			var infoA, infoB reqinfo.Info
			a := serveReverse(t, asIdentity("key:A", h, &infoA), log)
			b := serveReverse(t, asIdentity("key:B", h, &infoB), log)
			crossed := 0
			for i := range 50 {
				status, _, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", a+path)
				if strings.Contains(body, "STRAY") {
					continue // A's own stray, within A's identity
				}
				if status != http.StatusOK || body != "own:"+path {
					t.Fatalf("%d: A's GET %s = %d %q", i, path, status, body)
				}
				time.Sleep(time.Millisecond)
				status, stray, body := call(t, &http.Client{Transport: &http.Transport{}}, "GET", b+"/own")
				if stray != "" || strings.Contains(body, "STRAY") {
					crossed++
				} else {
					assertOwnAnswer(t, fmt.Sprintf("%d: B's next request", i), status, stray, body)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if crossed > 0 {
				t.Errorf("B's client received A's stray answer %d times in 50", crossed)
			}
			if infoA.Token.Empty() || infoB.Token.Empty() || !infoA.Token.Equal(infoB.Token) {
				t.Errorf("tokens recorded: A %v, B %v", infoA.Token, infoB.Token)
			}

		})
	}
}
