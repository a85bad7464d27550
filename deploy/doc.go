// Package deploy holds no Go code of its own: it is the deploy kit (systemd
// units, install.sh, example configuration, keepalived for a pair of lbs,
// OPERATIONS.md). Its tests check the units with systemd-analyze and by parsing
// them, run install.sh against a fake host (ssh, scp, sudo, systemctl and curl
// on PATH), keep OPERATIONS.md and lb.yaml.example naming every metric and
// config key of the code, check keepalived's files (keepalived --config-test,
// shellcheck, modes, the notify script against fakes), and run the keepalived
// pair on two lab hosts (internal/lab, as root) around a stand-in lb: this test
// binary, run under the name lb.
package deploy
