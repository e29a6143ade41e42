// Package listen binds credproxy's listeners: a TCP address (host:port) or
// a unix socket (unix:/path.sock), or takes the socket systemd passed for
// it (socket activation), and tells handlers who is calling on a unix
// socket.
//
// # Unix sockets
//
// Listen makes the socket file with the permission bits Options.Mode
// (LISTEN_MODE, default 0660) and the listener removes it at Close. The
// mode is never looser than Mode at any moment: the bits are set on the
// socket before bind(2), which Linux applies to the new file (less the
// umask), and a chmod(2) after bind, before the listener is returned and
// so before anything is accepted, lifts them to exactly Mode. A file left
// at the path by a run that was killed (a socket nobody answers on) is
// replaced; a socket some process still answers on is an error, and so is
// anything that is not a socket: Listen never removes a regular file.
//
// The socket's directory decides who can reach the path at all, and who
// can replace it: keep it writable only by credproxy's user (systemd's
// RuntimeDirectory=, or a socket unit's ListenStream= under /run), or
// sticky like /tmp. In a directory others may write to, any socket can be
// swapped under its owner.
//
// # Peer identity
//
// Each connection accepted on a unix listener is a *Conn carrying the
// caller's uid, gid and pid, read once from the kernel (SO_PEERCRED) at
// Accept: the credentials the caller had when it called connect(2), which
// it cannot forge. Serve with http.Server.ConnContext set to ConnContext
// and a handler reads them with PeerFrom; Allow decides whether a peer
// may use a route (ALLOW_UIDS, ALLOW_GIDS). TCP connections carry no
// identity (Options.TCPPeer is the hook for a lookup credproxy exec may
// do for loopback callers), so a route with an allow rule refuses them.
//
// # Socket activation
//
// Under a systemd socket unit the sockets are made and bound by systemd
// (with its SocketMode=, and kept across restarts of credproxy: callers
// queue instead of being refused). SystemdSockets takes them once at
// start; passed in Options.Sockets, each Listen takes the passed socket
// bound to its address (or, failing that, the one named like the listener
// with FileDescriptorName=) instead of binding, and CloseUnclaimed, after
// every listener is made, reports the sockets no listener took.
//
// The package is for Linux, as credproxy is: SO_PEERCRED, and a socket's
// mode set before bind, are Linux's.
package listen
