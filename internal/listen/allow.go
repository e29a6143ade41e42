package listen

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
	"strings"
)

// Allow restricts a route to callers on a unix socket with one of the
// uids, or one of the gids (ALLOW_UIDS, ALLOW_GIDS). The zero Allow
// permits everyone.
//
// A TCP caller has no identity the kernel vouches for (Peer.Known is
// false), so a route with either list set refuses every TCP caller: give
// such a route a unix socket.
type Allow struct {
	UIDs []int
	GIDs []int
}

// Permits reports whether p may use the route: its uid is in UIDs or its
// gid in GIDs. With neither list set, everyone may; with one set, an
// unknown caller may not. The gid is the caller's effective group only:
// supplementary groups are not in SO_PEERCRED.
func (a Allow) Permits(p Peer) bool {
	if len(a.UIDs) == 0 && len(a.GIDs) == 0 {
		return true
	}
	return p.Known && (slices.Contains(a.UIDs, p.UID) || slices.Contains(a.GIDs, p.GID))
}

// ParseUIDs parses ALLOW_UIDS: a comma list of uids or user names, names
// resolved now, at start, so a typo fails the start rather than every
// call. Empty: no rule.
//
// credproxy is built without cgo, so os/user reads /etc/passwd and
// /etc/group only: users from NSS alone (LDAP, systemd's DynamicUser=)
// are not found by name; give their numbers.
func ParseUIDs(list string) ([]int, error) {
	return parseIDs(list, "user", func(name string) (string, error) {
		u, err := user.Lookup(name)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
}

// ParseGIDs parses ALLOW_GIDS: a comma list of gids or group names, as
// ParseUIDs.
func ParseGIDs(list string) ([]int, error) {
	return parseIDs(list, "group", func(name string) (string, error) {
		g, err := user.LookupGroup(name)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
}

// maxID is the largest uid or gid: (uid_t)-1, 4294967295, means "none"
// to the kernel.
const maxID = 1<<32 - 2

// parseIDs parses a comma list of ids or names of kind (user, group),
// resolving names with lookup. An entry of digits only is an id.
func parseIDs(list, kind string, lookup func(string) (string, error)) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	var ids []int
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("entry %d is empty (a doubled or trailing comma?)", i+1)
		}
		text := entry
		if strings.Trim(entry, "0123456789") != "" {
			id, err := lookup(entry)
			if err != nil {
				var unknownU user.UnknownUserError
				var unknownG user.UnknownGroupError
				if errors.As(err, &unknownU) || errors.As(err, &unknownG) {
					return nil, fmt.Errorf("%q: no such %s (nor a number)", entry, kind)
				}
				return nil, fmt.Errorf("%q: look up the %s: %w", entry, kind, err)
			}
			text = id
		}
		id, err := strconv.ParseUint(text, 10, 64)
		if err != nil || id > maxID {
			return nil, fmt.Errorf("%q: not a %s id (0 to %d)", entry, kind, maxID)
		}
		ids = append(ids, int(id))
	}
	return ids, nil
}
