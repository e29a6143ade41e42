// Package edge decides who may spend a credential at credproxy's
// listeners, on which calls, and leaves a record of each decision.
package edge
