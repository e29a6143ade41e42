// Package validate checks credproxy's deployment files: every Kubernetes
// manifest and the rendered Helm chart decoded strictly with the real API
// types, the points the deployment contract promises, the Grafana dashboard
// and the Prometheus alert rules, the systemd unit with its environment
// file, and the Debian package's nfpm configuration read by nfpm itself.
package validate
