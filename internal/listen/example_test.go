package listen_test

import (
	"log"
	"net/http"

	"github.com/credproxy/credproxy/internal/listen"
)

// A route on a unix socket that only uid 1000 and the group "adm" may
// use; other callers are refused with 403.
func Example() {
	uids, err := listen.ParseUIDs("1000")
	if err != nil {
		log.Fatal(err)
	}
	gids, err := listen.ParseGIDs("adm")
	if err != nil {
		log.Fatal(err)
	}
	allow := listen.Allow{UIDs: uids, GIDs: gids}
	socks, err := listen.SystemdSockets() // nil unless started by a socket unit
	if err != nil {
		log.Fatal(err)
	}
	ln, err := listen.Listen("unix:/run/credproxy/credproxy.sock", listen.Options{Name: "reverse-default", Sockets: socks})
	if err != nil {
		log.Fatal(err)
	}
	if err := socks.CloseUnclaimed(); err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{
		ConnContext: listen.ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, _ := listen.PeerFrom(r.Context()); !allow.Permits(p) {
				http.Error(w, "caller_not_allowed", http.StatusForbidden)
				return
			}
			w.Write([]byte("hello\n"))
		}),
	}
	log.Fatal(srv.Serve(ln))
}
