package deploy

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"outrigger/internal/lbconfig"
)

// TestOperationsListsEveryMetric finds every lb_* metric name registered in
// the code (cmd/ and internal/, tests excepted) and checks that
// OPERATIONS.md names each in backticks, so the metrics table cannot fall
// behind the code.
func TestOperationsListsEveryMetric(t *testing.T) {
	doc := readFile(t, "OPERATIONS.md")
	decl := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(lb_[a-z0-9_]+)"`)
	found := map[string]bool{}
	for _, root := range []string{"../cmd", "../internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			for _, m := range decl.FindAllStringSubmatch(readFile(t, path), -1) {
				found[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
	}
	// DESIGN's nine plus lb_certificate_expiry_timestamp_seconds at least.
	if len(found) < 10 {
		t.Fatalf("found %d metric names in the code (%v), want at least 10: has the declaration style changed?", len(found), keys(found))
	}
	for _, name := range keys(found) {
		if !strings.Contains(doc, "`"+name+"`") && !strings.Contains(doc, "`"+name+"{") {
			t.Errorf("OPERATIONS.md does not list the metric %s", name)
		}
	}
}

// TestDocsNameEveryConfigKey walks lbconfig.Config's yaml tags and checks that
// every key path appears in lb.yaml.example or OPERATIONS.md.
func TestDocsNameEveryConfigKey(t *testing.T) {
	text := readFile(t, "lb.yaml.example") + readFile(t, "OPERATIONS.md")
	var paths []string
	yamlPaths(reflect.TypeOf(lbconfig.Config{}), "", &paths)
	if len(paths) < 30 {
		t.Fatalf("found %d config keys, want at least 30: %v", len(paths), paths)
	}
	for _, p := range paths {
		leaf := p[strings.LastIndex(p, ".")+1:]
		// In the example a key appears as "leaf:" (nested under its block); in
		// the guide as its full path.
		if !strings.Contains(text, leaf+":") && !strings.Contains(text, "`"+p+"`") {
			t.Errorf("config key %s appears neither in lb.yaml.example nor in OPERATIONS.md", p)
		}
	}
}

// yamlPaths appends the dotted yaml key paths of struct type typ.
func yamlPaths(typ reflect.Type, prefix string, out *[]string) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		p := prefix + tag
		*out = append(*out, p)
		yamlPaths(f.Type, p+".", out)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
