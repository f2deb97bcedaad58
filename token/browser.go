package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// browserWait is how long BrowserOpener waits for the opener to finish: xdg-open and open
// return at once, but a $BROWSER that is the browser itself runs until it is closed.
const browserWait = 3 * time.Second

// BrowserOpener returns a function that opens a URL for the user: with browser (the BROWSER
// setting, split on whitespace, the URL appended as its last argument) when set, else the OS
// opener (xdg-open, open, rundll32). It never waits more than a few seconds for the opener;
// the opener's output goes to stderr, never to stdout (stdout is the protocol's).
func BrowserOpener(browser string, stderr io.Writer) func(ctx context.Context, url string) error {
	if stderr == nil {
		stderr = io.Discard
	}
	return func(ctx context.Context, url string) error {
		argv := browserCommand(browser, runtime.GOOS, url)
		if len(argv) == 0 {
			return errors.New("no browser opener for " + runtime.GOOS)
		}
		// Not exec.CommandContext: the browser may outlive this call (and the login).
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout = stderr
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting %s: %w", argv[0], err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		t := time.NewTimer(browserWait)
		defer t.Stop()
		select {
		case err := <-waited:
			if err != nil {
				return fmt.Errorf("%s: %w", argv[0], err)
			}
			return nil
		case <-t.C:
			return nil // still running: a browser in the foreground; it has the URL
		case <-ctx.Done():
			return nil
		}
	}
}

// browserCommand is the argv that opens url.
func browserCommand(browser, goos, url string) []string {
	if f := strings.Fields(browser); len(f) > 0 {
		return append(f, url)
	}
	switch goos {
	case "darwin":
		return []string{"open", url}
	case "windows":
		return []string{"rundll32", "url.dll,FileProtocolHandler", url}
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly", "solaris", "illumos":
		return []string{"xdg-open", url}
	}
	return nil
}
