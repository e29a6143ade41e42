// Package edge decides who may spend a credential at credproxy's
// listeners, on which calls, and leaves a record of each decision.
//
// Whoever reaches a listener spends the route's credential on whatever the
// credential allows; the guards here run before a request reaches the
// proxy or the admin pages and refuse callers that must not. Each guard is
// built from plain values, one job per file: browser.go refuses web pages
// (cross-site requests and DNS rebinding), keys.go holds client keys
// (placeholder tokens), policy.go a route's request policy, audit.go the
// audit log. Refusals are logged and counted in
// credproxy_requests_denied_total (metrics.go).
package edge
