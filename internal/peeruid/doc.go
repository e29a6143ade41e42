// Package peeruid finds the user that owns the other end of a loopback TCP
// connection, from the kernel's socket tables (Linux: /proc/net/tcp and
// /proc/net/tcp6), so that a local server can serve only its own user.
//
// The lookup fails closed: when the client's socket cannot be found (it
// has gone, it lives in another network namespace, the tables cannot be
// read, or the platform has none), the answer is an error, never a uid.
package peeruid
