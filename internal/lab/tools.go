package lab

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// debianPackage names the Debian package(s) that install a program a lab may need, or "".
func debianPackage(program string) string {
	switch program {
	case "ip":
		return "iproute2"
	case "nft":
		return "nftables"
	case "keepalived":
		return "keepalived"
	case "pg_autoctl":
		return "pg-auto-failover-cli postgresql-15-auto-failover"
	case "sshd":
		return "openssh-server"
	case "ssh":
		return "openssh-client"
	case "logger":
		return "bsdutils"
	case "python3":
		return "python3"
	}
	return ""
}

// ErrNotRoot means the lab cannot be built because this process is not root.
var ErrNotRoot = errors.New("lab: network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run the lab's tests as root, e.g. sudo go test ./...")

// checkTools reports, in one error, every program in names that is not on PATH, with the
// Debian package that provides it.
func checkTools(names []string) error {
	var missing []string
	for _, name := range names {
		if _, err := exec.LookPath(name); err == nil {
			continue
		}
		pkg := debianPackage(name)
		if pkg == "" {
			missing = append(missing, name)
			continue
		}
		missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", name, pkg))
	}
	if len(missing) > 0 {
		return fmt.Errorf("lab: missing %s", strings.Join(missing, ", "))
	}
	return nil
}
