package proxy

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// Server limits shared by every listener.
const (
	// ReadHeaderTimeout bounds a client's request headers (slowloris).
	ReadHeaderTimeout = 10 * time.Second
	// IdleTimeout closes keep-alive connections left idle.
	IdleTimeout = 2 * time.Minute
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 64 << 10
)

// NewServer returns an http.Server for h with credproxy's limits. There is
// no overall read or write timeout: bodies stream both ways (ingestion
// uploads, streamed query results) and the client's own timeout governs.
func NewServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}
