package authority

import "testing"

func TestNormalize(t *testing.T) {
	tcs := []struct{ scheme, in, want string }{
		{"https", "API.Example.com", "api.example.com:443"},
		{"https", "api.example.com:443", "api.example.com:443"},
		{"https", "api.example.com.", "api.example.com:443"},
		{"https", "Host.Example.:8443", "host.example:8443"},
		{"http", "api.example.com", "api.example.com:80"},
		{"https", "[::1]:8443", "[::1]:8443"},
		{"https", "[::1]", "[::1]:443"},
		{"https", "::1", "[::1]:443"},
	}
	for _, tc := range tcs {
		got := Normalize(tc.scheme, tc.in)
		if got != tc.want {
			t.Errorf("Normalize(%q, %q) = %q, want %q", tc.scheme, tc.in, got, tc.want)
		}
		if again := Normalize(tc.scheme, got); again != got {
			t.Errorf("Normalize(%q, %q) = %q: not a fixpoint", tc.scheme, got, again)
		}
	}
}
