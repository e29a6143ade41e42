package listen

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseIDs(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		parse func(string) ([]int, error)
		in    string
		want  []int
		err   string
	}{
		{desc: "empty: no rule", parse: ParseUIDs, in: "", want: nil},
		{desc: "blank: no rule", parse: ParseGIDs, in: "  ", want: nil},
		{desc: "numbers", parse: ParseUIDs, in: "0,1000, 65534", want: []int{0, 1000, 65534}},
		{desc: "user names", parse: ParseUIDs, in: "root, nobody,1000", want: []int{0, 65534, 1000}},
		{desc: "group names", parse: ParseGIDs, in: "nogroup,root", want: []int{65534, 0}},
		{desc: "largest id", parse: ParseGIDs, in: "4294967294", want: []int{4294967294}},
		{desc: "unknown user", parse: ParseUIDs, in: "root,credproxy-no-such-user", err: `"credproxy-no-such-user": no such user`},
		{desc: "unknown group", parse: ParseGIDs, in: "credproxy-no-such-group", err: `"credproxy-no-such-group": no such group`},
		{desc: "a group name is not a user", parse: ParseUIDs, in: "nogroup", err: `"nogroup": no such user`},
		{desc: "negative", parse: ParseUIDs, in: "-1", err: `"-1": no such user`},
		{desc: "(uid_t)-1", parse: ParseUIDs, in: "4294967295", err: `"4294967295": not a user id`},
		{desc: "too long", parse: ParseGIDs, in: "99999999999999999999999", err: `not a group id`},
		{desc: "doubled comma", parse: ParseUIDs, in: "0,,1", err: "entry 2 is empty"},
		{desc: "trailing comma", parse: ParseGIDs, in: "0,", err: "entry 2 is empty"},
	} {
		got, err := tc.parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %q gives %v, %v; want an error with %q", tc.desc, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %q: %v", tc.desc, tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: %q (-want +got):\n%s", tc.desc, tc.in, diff)
		}
	}
}

func TestAllowPermits(t *testing.T) {
	alice := Peer{UID: 1000, GID: 1000, PID: 42, Known: true}
	rootPeer := Peer{UID: 0, GID: 0, PID: 1, Known: true}
	inGroup := Peer{UID: 2000, GID: 50, PID: 43, Known: true}
	tcp := Peer{}
	for _, tc := range []struct {
		desc  string
		allow Allow
		peer  Peer
		want  bool
	}{
		{desc: "no rule, known", allow: Allow{}, peer: alice, want: true},
		{desc: "no rule, TCP caller", allow: Allow{}, peer: tcp, want: true},
		{desc: "uid listed", allow: Allow{UIDs: []int{1000}}, peer: alice, want: true},
		{desc: "uid not listed", allow: Allow{UIDs: []int{1000}}, peer: rootPeer, want: false},
		{desc: "gid listed", allow: Allow{GIDs: []int{50}}, peer: inGroup, want: true},
		{desc: "gid not listed", allow: Allow{GIDs: []int{50}}, peer: alice, want: false},
		{desc: "uid or gid: by gid", allow: Allow{UIDs: []int{1000}, GIDs: []int{50}}, peer: inGroup, want: true},
		{desc: "uid or gid: by uid", allow: Allow{UIDs: []int{1000}, GIDs: []int{50}}, peer: alice, want: true},
		{desc: "uid or gid: neither", allow: Allow{UIDs: []int{1000}, GIDs: []int{50}}, peer: rootPeer, want: false},
		{desc: "TCP caller with a uid rule", allow: Allow{UIDs: []int{0}}, peer: tcp, want: false},
		{desc: "TCP caller with a gid rule", allow: Allow{GIDs: []int{0}}, peer: tcp, want: false},
		{desc: "unknown caller whose zero ids are listed", allow: Allow{UIDs: []int{0}, GIDs: []int{0}}, peer: Peer{Known: false}, want: false},
	} {
		if got := tc.allow.Permits(tc.peer); got != tc.want {
			t.Errorf("%s: Permits(%+v) = %v, want %v", tc.desc, tc.peer, got, tc.want)
		}
	}
}
