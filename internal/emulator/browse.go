package emulator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Browse is a browser: it GETs url and follows redirects (also to a
// helper's loopback callback) until a 2xx page. Visiting the device flow's
// verification_uri_complete approves the code as the browser user.
func (e *Emulator) Browse(ctx context.Context, url string) error { return Browse(ctx, url) }

// Browse is the browser of (*Emulator).Browse, usable without an emulator
// in process (cgr-emulator browse).
func Browse(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("browse: %w", err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("browse: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		u := resp.Request.URL // its query may hold a token: never show it
		return fmt.Errorf("browse: %s://%s%s answered %s: %s", u.Scheme, u.Host, u.Path, resp.Status, firstLine(string(body)))
	}
	return nil
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' || c == '\r' {
			return s[:i]
		}
	}
	return s
}
