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
// and line), applies the defaults, and validates the result. Every problem is
// reported at once: unknown keys and values of the wrong type (each with its
// key path and line) together with the errors of Validate (see FieldErrors).
func Parse(data []byte) (*Config, error) {
	cfg, probs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		probs = append(probs, err)
	}
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}
	return cfg, nil
}

// Decode decodes YAML strictly and applies the defaults, without validating.
func Decode(data []byte) (*Config, error) {
	cfg, probs, err := decode(data)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}
	return cfg, nil
}

// decode returns err for a file that cannot be read as YAML at all, else the
// config with defaults and the problems found in it (unknown keys, values of
// the wrong type), each naming its key path.
func decode(data []byte) (*Config, []error, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, fmt.Errorf("parse yaml: %w", err)
	}
	var probs []error
	if len(root.Content) > 0 {
		checkKeys(root.Content[0], reflect.TypeOf(Config{}), "", &probs)
	}

	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(cfg)
	var te *yaml.TypeError
	switch {
	case errors.As(err, &te):
		// checkKeys reported each of these with its key path; one it could
		// not place is reported as it is.
		if len(probs) == 0 {
			probs = append(probs, fmt.Errorf("parse yaml: %w", err))
		}
	case err != nil && !errors.Is(err, io.EOF):
		return nil, nil, fmt.Errorf("parse yaml: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("parse yaml: more than one YAML document")
	}
	cfg.applyDefaults()
	return cfg, probs, nil
}

// UnknownKeyError is a key in the file that the configuration does not have.
type UnknownKeyError struct {
	Path  string   // key path, e.g. health_check.intervall
	Line  int      // 1-based line in the file
	Known []string // the keys allowed at that place
}

// Error says where the key is and which keys are allowed there, in the
// "path: line N: ..." form of every problem.
func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("%s: line %d: unknown key (known: %s)", e.Path, e.Line, strings.Join(e.Known, ", "))
}

// checkKeys walks the YAML tree along the Go type and reports every mapping
// key that has no field, and every value that does not decode into its
// field's type, with its key path and line.
func checkKeys(n *yaml.Node, t reflect.Type, path string, probs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	typeErr := func(want string) {
		*probs = append(*probs, &FieldError{Path: pathOrRoot(path), Msg: fmt.Sprintf("line %d: want %s", n.Line, want)})
	}
	switch {
	case t.Kind() == reflect.Struct && t.PkgPath() != "time":
		if n.Kind != yaml.MappingNode {
			typeErr("a mapping of keys")
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
			checkKeys(v, ft, p, probs)
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			typeErr("a list")
			return
		}
		for i, c := range n.Content {
			checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), probs)
		}
	default:
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			*probs = append(*probs, &FieldError{Path: pathOrRoot(path), Msg: typeErrorText(err)})
		}
	}
}

func pathOrRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

// typeErrorText is yaml's message for a value of the wrong type, without its
// "yaml: unmarshal errors:" header.
func typeErrorText(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}
