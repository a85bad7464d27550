package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"outrigger/internal/admin"
)

// parseAdminURL checks one admin API URL: http or https, a host, and nothing after it but
// an optional "/" (no path, query, fragment or userinfo: the token goes in a header). It
// returns the URL without a trailing slash.
func parseAdminURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return "", fmt.Errorf("admin URL %q: want http://HOST:PORT or https://HOST:PORT", raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("admin URL %q: no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("admin URL %q: no userinfo, please (the token comes from -token-file)", raw)
	case u.Path != "" && u.Path != "/", u.RawQuery != "", u.ForceQuery, u.Fragment != "":
		return "", fmt.Errorf("admin URL %q: no path, query or fragment (the admin listener's base URL, e.g. http://127.0.0.1:9000)", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// parseAdminEnv reads LB_ADMIN: one admin URL, or several separated by commas (the lbs of
// a pair); spaces around an item are ignored. An empty item or a bad URL is an error that
// names it.
func parseAdminEnv(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	items := strings.Split(v, ",")
	out := make([]string, 0, len(items))
	for i, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("LB_ADMIN=%q: item %d of %d is empty (want URL[,URL...])", v, i+1, len(items))
		}
		u, err := parseAdminURL(item)
		if err != nil {
			return nil, fmt.Errorf("LB_ADMIN: %w", err)
		}
		out = append(out, u)
	}
	return out, nil
}

// noDuplicates refuses an lb named twice: a mutating call would run twice on it (and an add
// would fail the second time).
func noDuplicates(urls []string) error {
	seen := map[string]bool{}
	for _, u := range urls {
		if seen[u] {
			return fmt.Errorf("admin URL %s is given twice", u)
		}
		seen[u] = true
	}
	return nil
}

// describe says in a few words why an lb did not do what was asked: the API's status and
// message, or that it could not be reached (and the network error).
func describe(err error) string {
	var apiErr *admin.APIError
	if errors.As(err, &apiErr) {
		return fmt.Sprintf("HTTP %d: %s", apiErr.Status, apiErr.Message)
	}
	var na *admin.NoAnswerError
	if errors.As(err, &na) {
		return na.Error()
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if uerr.Timeout() {
			return "no answer in time: " + uerr.Err.Error()
		}
		return "unreachable: " + uerr.Err.Error()
	}
	return err.Error()
}
