package lbconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads the file at path and returns it parsed, defaulted and validated,
// as Parse does. Errors name the file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML strictly (an unknown key is an error naming its key path
// and line), applies the defaults, and validates the result. A validation
// failure returns the errors of Validate (every problem, see FieldErrors).
func Parse(data []byte) (*Config, error) {
	cfg, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Decode decodes YAML strictly and applies the defaults, without validating.
func Decode(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	if len(root.Content) > 0 {
		var probs []error
		unknownKeys(root.Content[0], reflect.TypeOf(Config{}), "", &probs)
		if len(probs) > 0 {
			return nil, errors.Join(probs...)
		}
	}

	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse yaml: more than one YAML document")
	}
	cfg.applyDefaults()
	return cfg, nil
}

// UnknownKeyError is a key in the file that the configuration does not have.
type UnknownKeyError struct {
	Path  string   // key path, e.g. health_check.intervall
	Line  int      // 1-based line in the file
	Known []string // the keys allowed at that place
}

// Error says where the key is and which keys are allowed there.
func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("line %d: %s: unknown key (known: %s)", e.Line, e.Path, strings.Join(e.Known, ", "))
}

// unknownKeys walks the YAML tree along the Go type and reports every
// mapping key that has no field, with its path and line.
func unknownKeys(n *yaml.Node, t reflect.Type, path string, probs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t.PkgPath() == "time" {
			return
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			known = append(known, name)
		}
		sort.Strings(known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ft, ok := fields[k.Value]
			if !ok {
				*probs = append(*probs, &UnknownKeyError{Path: p, Line: k.Line, Known: known})
				continue
			}
			unknownKeys(v, ft, p, probs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), probs)
		}
	}
}
