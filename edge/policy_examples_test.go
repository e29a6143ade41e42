package edge

import "testing"

// TestPolicyWorkedExamples: the two policies of docs/security.md, "Worked
// examples of least privilege", allow and refuse what the text says.
func TestPolicyWorkedExamples(t *testing.T) {
	splunk := "GET /v2/token,GET /v2/token/*,POST /v2/token,POST /v2/token/*/rotate,PUT /v2/token/*"
	reports := "GET /api/v2/**,HEAD /api/v2/**"
	tcs := []struct {
		policy, method, path string
		allowed              bool
	}{
		{splunk, "POST", "/v2/token/ingest-eu/rotate", true},
		{splunk, "GET", "/v2/token", true},
		{splunk, "DELETE", "/v2/token/ingest-eu", false},
		{splunk, "POST", "/v2/user/invite", false},
		{splunk, "PUT", "/v2/organization", false},
		{splunk, "POST", "/v2/token/x/../../user/invite", false},
		{reports, "GET", "/api/v2/chart/api", true},
		{reports, "HEAD", "/api/v2/source", true},
		{reports, "POST", "/api/v2/source", false},
		{reports, "GET", "/api/v2/../v1/x", false},
		{reports, "GET", "/api/v2/%2e%2e/x", false},
		{reports, "GET", "/api/v2/a%2Fb", false},
	}
	for _, tc := range tcs {
		p, err := ParsePolicy(tc.policy)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := p.Check(tc.method, tc.path); ok != tc.allowed {
			t.Errorf("%s %s under %q: allowed %v, want %v", tc.method, tc.path, tc.policy, ok, tc.allowed)
		}
	}
}
