package server

import (
	"fmt"
	"io"

	"go.uber.org/zap"

	"github.com/credproxy/credproxy/edge"
)

// newAuditor opens CREDPROXY_AUDIT_LOG. Its problems (a failed write or
// reopen, a file whose permissions were too wide) are logged, and every
// event it loses is counted in credproxy_audit_events_lost_total by
// reason: auditing never blocks a request, so a loss is what a full queue
// or a failing disk costs, and the counter is how an operator learns of it.
func newAuditor(target edge.AuditTarget, stdout io.Writer, m *edge.Metrics, log *zap.Logger) (*edge.Auditor, error) {
	alog := log.Named("audit")
	a, err := edge.NewAuditor(edge.AuditOptions{
		Target:    target,
		Stdout:    stdout,
		OnProblem: func(err error) { alog.Warn("audit log", zap.Error(err)) },
		OnLost:    m.AuditLost,
	})
	if err != nil {
		return nil, fmt.Errorf("CREDPROXY_AUDIT_LOG: %w", err)
	}
	if target.Kind != edge.AuditOff {
		alog.Info("audit log on", zap.String("target", target.String()))
	}
	return a, nil
}
