package h1

import (
	"net/textproto"
	"strings"
)

// Kind classifies a header field name, ASCII case-insensitively.
type Kind uint8

// The kinds of field names the fast path treats specially; KindOther is every other name.
const (
	KindOther Kind = iota
	KindHost
	KindContentLength
	KindTransferEncoding
	KindConnection
	KindKeepAlive
	KindProxyConnection
	KindProxyAuthenticate
	KindProxyAuthorization
	KindTE
	KindTrailer
	KindUpgrade
	KindExpect
	KindXForwardedFor
	KindXForwardedHost
	KindXForwardedProto
	KindForwarded
	KindXRealIP      // X-Real-IP
	KindXClientIP    // X-Client-IP
	KindTrueClientIP // True-Client-IP
	KindXRequestID   // X-Request-ID
	KindDate
	KindContentType
	KindStrictTransportSecurity
)

// kindNames are the canonical field names of the kinds, in Kind order.
var kindNames = [...]string{
	KindOther:                   "",
	KindHost:                    "Host",
	KindContentLength:           "Content-Length",
	KindTransferEncoding:        "Transfer-Encoding",
	KindConnection:              "Connection",
	KindKeepAlive:               "Keep-Alive",
	KindProxyConnection:         "Proxy-Connection",
	KindProxyAuthenticate:       "Proxy-Authenticate",
	KindProxyAuthorization:      "Proxy-Authorization",
	KindTE:                      "TE",
	KindTrailer:                 "Trailer",
	KindUpgrade:                 "Upgrade",
	KindExpect:                  "Expect",
	KindXForwardedFor:           "X-Forwarded-For",
	KindXForwardedHost:          "X-Forwarded-Host",
	KindXForwardedProto:         "X-Forwarded-Proto",
	KindForwarded:               "Forwarded",
	KindXRealIP:                 "X-Real-IP",
	KindXClientIP:               "X-Client-IP",
	KindTrueClientIP:            "True-Client-IP",
	KindXRequestID:              "X-Request-ID",
	KindDate:                    "Date",
	KindContentType:             "Content-Type",
	KindStrictTransportSecurity: "Strict-Transport-Security",
}

// kindKeys are the names of the kinds as net/http's Header keys them
// (textproto.CanonicalMIMEHeaderKey: "X-Real-Ip", "Te"); built once, only read afterwards.
var kindKeys = func() (keys [len(kindNames)]string) {
	for k, name := range kindNames {
		keys[k] = textproto.CanonicalMIMEHeaderKey(name)
	}
	return keys
}()

// kindLower are the names of the kinds in lower case, as HTTP/2 sends them; built once, only
// read afterwards.
var kindLower = func() (names [len(kindNames)]string) {
	for k, name := range kindNames {
		names[k] = strings.ToLower(name)
	}
	return names
}()

// LowerName returns k's field name in lower case ("x-request-id"), "" for KindOther and
// unknown values. It does not allocate.
func (k Kind) LowerName() string {
	if int(k) < len(kindLower) && k != KindOther {
		return kindLower[k]
	}
	return ""
}

// HeaderKey returns k's field name as a key of net/http's Header ("X-Request-Id"), "" for
// KindOther and unknown values. It does not allocate.
func (k Kind) HeaderKey() string {
	if int(k) < len(kindKeys) && k != KindOther {
		return kindKeys[k]
	}
	return ""
}

// String returns the field name of k ("Content-Length"), or "other" for KindOther and
// unknown values.
func (k Kind) String() string {
	if int(k) < len(kindNames) && k != KindOther {
		return kindNames[k]
	}
	return "other"
}

// Classify returns the Kind of the field name, ASCII case-insensitively, without allocating.
// A name with an underscore is KindOther.
func Classify(name []byte) Kind {
	if len(name) < 2 {
		return KindOther
	}
	// Switch on the length, then on the first letter, so that one comparison decides.
	c := lower(name[0])
	var k Kind
	switch len(name) {
	case 2:
		k = KindTE
	case 4:
		k = pick(c, 'h', KindHost, 'd', KindDate)
	case 6:
		k = KindExpect
	case 7:
		k = pick(c, 't', KindTrailer, 'u', KindUpgrade)
	case 9:
		k = pick(c, 'f', KindForwarded, 'x', KindXRealIP)
	case 10:
		k = pick(c, 'c', KindConnection, 'k', KindKeepAlive)
	case 11:
		k = KindXClientIP
	case 12:
		k = pick(c, 'x', KindXRequestID, 'c', KindContentType)
	case 14:
		k = pick(c, 'c', KindContentLength, 't', KindTrueClientIP)
	case 15:
		k = KindXForwardedFor
	case 16:
		k = pick(c, 'p', KindProxyConnection, 'x', KindXForwardedHost)
	case 17:
		k = pick(c, 't', KindTransferEncoding, 'x', KindXForwardedProto)
	case 18:
		k = KindProxyAuthenticate
	case 19:
		k = KindProxyAuthorization
	case 25:
		k = KindStrictTransportSecurity
	default:
		return KindOther
	}
	if k != KindOther && equalFold(name, kindNames[k]) {
		return k
	}
	return KindOther
}

// pick returns k1 if c is c1, k2 if c is c2, else KindOther.
func pick(c, c1 byte, k1 Kind, c2 byte, k2 Kind) Kind {
	switch c {
	case c1:
		return k1
	case c2:
		return k2
	}
	return KindOther
}
