package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Actions (run a job, verify a snapshot) need the configured token: as a bearer header, for
// scripts, or as a session cookie obtained by posting it to /login, for the page. A cookie is sent
// by the browser on its own, so requests authenticated by it must also carry the CSRF value that
// only the page's forms know, and must not come from another site.

const sessionCookie = "tracevault_session"

// sessionTTL is how long a login lasts; the cookie and the value it carries both expire.
const sessionTTL = 12 * time.Hour

// auth checks credentials. A session is "expiry.nonce.mac", the mac keyed by the token: any
// daemon sharing the token accepts it until it expires, and logging out revokes its nonce on the
// daemon that served the logout (revocations are kept until the session would have expired).
type auth struct {
	token string

	mu      sync.Mutex
	revoked map[string]time.Time // nonce -> the session's expiry
}

func newAuth(token string) *auth { return &auth{token: token, revoked: map[string]time.Time{}} }

// derive turns the token into a value for one purpose, so neither the cookie nor the form field
// reveals the token itself.
func (a *auth) derive(purpose string) string {
	m := hmac.New(sha256.New, []byte(a.token))
	m.Write([]byte("tracevault web " + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *auth) enabled() bool { return a.token != "" }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (a *auth) bearer(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	return ok && a.enabled() && equal(strings.TrimSpace(tok), a.token)
}

// newSession returns a fresh session value, valid until expires.
func (a *auth) newSession(now time.Time) (value string, expires time.Time) {
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce) // never fails (crypto/rand)
	expires = now.Add(sessionTTL).Truncate(time.Second)
	body := fmt.Sprintf("%d.%s", expires.Unix(), hex.EncodeToString(nonce))
	return body + "." + a.derive("session "+body), expires
}

// sessionNonce parses and checks a session value: its mac, its expiry and its revocation.
func (a *auth) sessionNonce(value string, now time.Time) (string, time.Time, bool) {
	exp, rest, ok1 := strings.Cut(value, ".")
	nonce, mac, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !a.enabled() || !equal(mac, a.derive("session "+exp+"."+nonce)) {
		return "", time.Time{}, false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(sec, 0)) {
		return "", time.Time{}, false
	}
	a.mu.Lock()
	_, revoked := a.revoked[nonce]
	a.mu.Unlock()
	return nonce, time.Unix(sec, 0), !revoked
}

func (a *auth) session(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return false
	}
	_, _, ok := a.sessionNonce(c.Value, time.Now())
	return ok
}

// revoke ends r's session on this server, whatever its cookie's expiry says.
func (a *auth) revoke(r *http.Request) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return
	}
	now := time.Now()
	nonce, expires, ok := a.sessionNonce(c.Value, now)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, exp := range a.revoked {
		if !now.Before(exp) {
			delete(a.revoked, n) // expired anyway
		}
	}
	a.revoked[nonce] = expires
}

// secure says whether the session cookie gets the Secure attribute: always when configured so, when
// r came over TLS to the daemon, or when a trusted proxy says its client's request did. The last
// X-Forwarded-Proto value is the one the proxy that connected to us wrote (a proxy may append to
// what its own client sent); from an address outside trusted the header is ignored.
func (s *Server) secure(r *http.Request) bool {
	if s.opts.AlwaysSecureCookies || r.TLS != nil {
		return true
	}
	return forwardedHTTPS(r, s.opts.TrustedProxies)
}

func forwardedHTTPS(r *http.Request, trusted []netip.Prefix) bool {
	proto := r.Header.Values("X-Forwarded-Proto")
	if len(proto) == 0 || len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range trusted {
		if p.Contains(addr) {
			last := proto[len(proto)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			return strings.EqualFold(strings.TrimSpace(last), "https")
		}
	}
	return false
}

// csrf is the value the page's forms carry; empty when there is no token (no actions).
func (a *auth) csrf() string {
	if !a.enabled() {
		return ""
	}
	return a.derive("csrf")
}

// sameSite rejects requests a browser marks as coming from another site, and requests whose
// Origin names another host.
func sameSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		return err == nil && u.Host == r.Host
	}
	return true
}

// mayAct says whether r may take an action, and if not, the status and reason to answer with.
func (a *auth) mayAct(r *http.Request) (int, string) {
	switch {
	case !a.enabled():
		return http.StatusForbidden, "actions are disabled: set [web] token to enable them"
	case a.bearer(r):
		return 0, ""
	case !a.session(r):
		return http.StatusUnauthorized, "an action needs the [web] token: log in on the page or send Authorization: Bearer <token>"
	case !sameSite(r):
		return http.StatusForbidden, "cross-site request refused"
	}
	given := r.Header.Get("X-CSRF-Token")
	if given == "" {
		given = r.PostFormValue("csrf")
	}
	if !equal(given, a.csrf()) {
		return http.StatusForbidden, "missing or wrong CSRF value: reload the page and try again"
	}
	return 0, ""
}

// mayRead says whether r may read the page and the API.
func (a *auth) mayRead(r *http.Request, required bool) bool {
	return !required || a.bearer(r) || a.session(r)
}

// limiter counts login attempts per client address in fixed windows, so the token cannot be
// guessed at network speed. The address is the connection's peer: a header naming the client
// could be forged to get a fresh budget per attempt.
type limiter struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	clients map[string]*attempts
}

type attempts struct {
	start time.Time
	n     int
}

// maxTrackedClients bounds the limiter's memory; past it, windows that ended are dropped first.
const maxTrackedClients = 4096

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, clients: map[string]*attempts{}}
}

// allow records one attempt from r's client and says whether it is within the budget, and if
// not, when the client may try again.
func (l *limiter) allow(r *http.Request, now time.Time) (bool, time.Duration) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.clients) >= maxTrackedClients {
		for k, a := range l.clients {
			if now.Sub(a.start) >= l.window {
				delete(l.clients, k)
			}
		}
	}
	a := l.clients[ip]
	if a == nil || now.Sub(a.start) >= l.window {
		if a == nil && len(l.clients) >= maxTrackedClients {
			// Thousands of clients inside one window: an attack, not operators. Refuse new ones
			// until windows end rather than grow without bound.
			return false, l.window
		}
		a = &attempts{start: now}
		l.clients[ip] = a
	}
	a.n++
	if a.n > l.max {
		return false, a.start.Add(l.window).Sub(now)
	}
	return true, 0
}
