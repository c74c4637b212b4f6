package gateway

import (
	"embed"
	"io/fs"
	"net/http"
)

// consoleFiles are the operator console's: an HTML page, a stylesheet and a script, embedded in
// the binary (no build step, nothing loaded from elsewhere). The console is a client of the
// public GraphQL API with the token its user pastes: it is authorized like any other client.
//
//go:embed console
var consoleFiles embed.FS

// console serves the operator console at /console. The files are public; what they show comes
// from /graphql, with the user's token.
func console() http.Handler {
	sub, err := fs.Sub(consoleFiles, "console")
	if err != nil {
		panic(err) // the embedded directory exists: a build without it does not compile
	}
	files := http.StripPrefix("/console/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// Only its own files, no inline script or style, no framing.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/console" || r.URL.Path == "/console/" {
			http.ServeFileFS(w, r, sub, "index.html")
			return
		}
		files.ServeHTTP(w, r)
	})
}
