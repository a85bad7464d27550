// Package deploy holds no Go code of its own: it is the deploy kit (systemd
// units, install.sh, example configuration, OPERATIONS.md). Its tests check
// the units with systemd-analyze and by parsing them, and run install.sh
// against a fake host (ssh, scp, sudo, systemctl and curl on PATH), and keep
// OPERATIONS.md and lb.yaml.example naming every metric and config key of the code.
package deploy
