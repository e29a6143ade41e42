// Package mitm is the forward proxy's certificate authority: the CA that
// `credproxy ca init` writes or that a process makes for itself, and the
// per-host leaf certificates it signs for the hosts credproxy intercepts.
package mitm
