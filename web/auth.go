package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// Actions (run a job, verify a snapshot) need the configured token: as a bearer header, for
// scripts, or as a session cookie obtained by posting it to /login, for the page. A cookie is sent
// by the browser on its own, so requests authenticated by it must also carry the CSRF value that
// only the page's forms know, and must not come from another site.

const sessionCookie = "tracevault_session"

type auth struct{ token string }

// derive turns the token into a value for one purpose, so neither the cookie nor the form field
// reveals the token itself.
func (a auth) derive(purpose string) string {
	m := hmac.New(sha256.New, []byte(a.token))
	m.Write([]byte("tracevault web " + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func (a auth) enabled() bool { return a.token != "" }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (a auth) bearer(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	return ok && a.enabled() && equal(strings.TrimSpace(tok), a.token)
}

func (a auth) session(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	return err == nil && a.enabled() && equal(c.Value, a.derive("session"))
}

// csrf is the value the page's forms carry; empty when there is no token (no actions).
func (a auth) csrf() string {
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
func (a auth) mayAct(r *http.Request) (int, string) {
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
func (a auth) mayRead(r *http.Request, required bool) bool {
	return !required || a.bearer(r) || a.session(r)
}
