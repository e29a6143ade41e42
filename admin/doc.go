// Package admin serves credproxy's admin listener: /healthz, /readyz, the
// status page and /status.json, and what it is given at New: /metrics
// (a registry each package registers its own metrics on), the forward
// proxy's /ca.pem, and the token hand-out endpoints, which package
// tokenapi implements and admin only mounts (or, switched off, its
// SwitchedOff answer naming the variable that turns them on).
//
// It reads the routes' token state (tokencache) and credential expiry
// (credexpiry); nothing it serves itself ever holds a secret.
package admin
