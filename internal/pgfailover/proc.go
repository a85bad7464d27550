package pgfailover

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// processesOf lists the live processes of the node whose directory is dir: those marked
// in their environment (pg_autoctl, the postmaster), and those working in dir. The second
// catches PostgreSQL's other processes, which overwrite their environment with their
// process title ("postgres: walsender ...") but keep their data directory as working
// directory; a SIGKILLed postmaster leaves them behind, holding its shared memory, and no
// new postmaster starts on that data directory until they are gone.
func processesOf(dir string) []int {
	marker := markerVar + "=" + dir
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || zombie(pid) {
			continue
		}
		if hasEnv(pid, marker) || workingIn(pid, dir) {
			out = append(out, pid)
		}
	}
	return out
}

// workingIn reports whether pid's working directory is dir or below it.
func workingIn(pid int, dir string) bool {
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil {
		return false
	}
	cwd = strings.TrimSuffix(cwd, " (deleted)")
	return cwd == dir || strings.HasPrefix(cwd, dir+"/")
}

func hasEnv(pid int, entry string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if string(kv) == entry {
			return true
		}
	}
	return false
}

// zombie reports whether pid has exited and waits for its parent to reap it.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}
