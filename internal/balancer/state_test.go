package balancer

import (
	"errors"
	"testing"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"app-1", true},
		{"a.b_c-9", true},
		{"x", true},
		{string(make([]byte, 65)), false},
		{"", false},
		{"App", false},
		{"a b", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		err := ValidateName(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) error %v does not wrap ErrInvalid", tt.name, err)
		}
	}
}

func TestValidateURL(t *testing.T) {
	tests := []struct {
		raw  string
		want string // "" = invalid
	}{
		{"http://10.0.0.11:8080", "http://10.0.0.11:8080"},
		{"https://app.internal:8443/", "https://app.internal:8443"},
		{"http://[::1]:80", "http://[::1]:80"},
		{"http://10.0.0.11", ""},
		{"ftp://h:21", ""},
		{"http://h:8080/path", ""},
		{"http://h:8080?q=1", ""},
		{"http://h:8080#f", ""},
		{"http://u:p@h:8080", ""},
		{"http://h:0", ""},
		{"http://h:99999", ""},
		{"h:8080", ""},
		{"http://:8080", ""},
		{"::", ""},
	}
	for _, tt := range tests {
		u, err := ValidateURL(tt.raw)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ValidateURL(%q) = %v, want error", tt.raw, u)
		case tt.want == "" && !errors.Is(err, ErrInvalid):
			t.Errorf("ValidateURL(%q) error %v does not wrap ErrInvalid", tt.raw, err)
		case tt.want != "" && err != nil:
			t.Errorf("ValidateURL(%q) error %v", tt.raw, err)
		case tt.want != "" && u.String() != tt.want:
			t.Errorf("ValidateURL(%q) = %q, want %q", tt.raw, u, tt.want)
		}
	}
}

func TestStateString(t *testing.T) {
	if got := StateActive.String(); got != "active" {
		t.Errorf("got %q, want active", got)
	}
	if got := StateDraining.String(); got != "draining" {
		t.Errorf("got %q, want draining", got)
	}
}
