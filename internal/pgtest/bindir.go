package pgtest

import (
	"os"
	"path/filepath"
	"strconv"
)

// FindBinDir returns the directory holding initdb and postgres: the highest version under
// /usr/lib/postgresql, else the first directory of $PATH that has both. ErrNoPostgres if none.
func FindBinDir() (string, error) {
	return findBinDir("/usr/lib/postgresql/*/bin", os.Getenv("PATH"))
}

func findBinDir(pattern, pathList string) (string, error) {
	hasBoth := func(d string) bool {
		return executable(filepath.Join(d, "initdb")) && executable(filepath.Join(d, "postgres"))
	}
	dirs, _ := filepath.Glob(pattern)
	best, bestVer := "", -1.0
	for _, d := range dirs {
		if !hasBoth(d) {
			continue
		}
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if v > bestVer {
			best, bestVer = d, v
		}
	}
	if best != "" {
		return best, nil
	}
	for _, d := range filepath.SplitList(pathList) {
		if d != "" && hasBoth(d) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
