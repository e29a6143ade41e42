package logtest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs     []string
	cleanups []func()
}

func (r *recorder) Helper()             {}
func (r *recorder) Failed() bool        { return len(r.errs) > 0 }
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Cleanup(f func())    { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestHygieneFindsPiecesInEveryKindOfText(t *testing.T) {
	const cred, token = "cred-0123456789-secret", "issued.token.abcdefgh"
	tcs := []struct {
		desc    string
		produce func(h *Hygiene)
		want    string
	}{
		{desc: "clean", produce: func(h *Hygiene) {
			log, _ := h.Logger("logs")
			log.Info("token obtained", zap.String("token", "sha256:1a2b"))
			h.Add("/readyz", `{"ready":true}`)
			h.Err("error", errors.New("HTTP 400: invalid_grant"))
			h.Err("nil error", nil)
		}},
		{desc: "log line after the hand-over", produce: func(h *Hygiene) {
			log, _ := h.Logger("logs")
			log.Warn("oops", zap.String("v", "x"+cred[3:11]+"y"))
		}, want: "logs contains"},
		{desc: "token learned during the test", produce: func(h *Hygiene) {
			h.Secret(token)
			h.Add("/metrics", "credproxy_info{token=\"issued.t\"} 1")
		}, want: "/metrics contains"},
		{desc: "error string", produce: func(h *Hygiene) {
			h.Err("503 body", fmt.Errorf("exchange: %s", cred))
		}, want: "503 body contains"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			r := &recorder{TB: t}
			h := NewHygiene(r, cred, "")
			tc.produce(h)
			if h.Texts() == 0 {
				t.Fatal("nothing gathered")
			}
			r.end()
			got := strings.Join(r.errs, "\n")
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("failures %q, want %q", got, tc.want)
			}
		})
	}
}
