// Package chromiumtest runs Debian's headless Chromium for the tests that
// need a real browser (the status page's layout, the browser guard
// against a page of another origin). It is test support: no command or
// server imports it.
package chromiumtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Path is Debian's chromium, which CI installs.
const Path = "/usr/bin/chromium"

// Need skips t without Chromium, or fails it when CI asks for it
// (CREDPROXY_REQUIRE_CHROMIUM=1).
func Need(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
		if os.Getenv("CREDPROXY_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("CREDPROXY_REQUIRE_CHROMIUM=1 but %s is missing (apt-get install chromium): %v", Path, err)
		}
		t.Skipf("%s not installed; CI installs it and sets CREDPROXY_REQUIRE_CHROMIUM=1", Path)
	}
}

// Options are a run's window and what it returns.
type Options struct {
	// Width and Height size the window; zero leaves Chromium's default.
	Width, Height int
	// Screenshot, when set, is where a PNG is written instead of the DOM
	// being returned.
	Screenshot string
	// VirtualTime is how long the page's scripts and loads run in
	// virtual time before the DOM is taken (default 5 s).
	VirtualTime time.Duration
}

// Run loads url in headless Chromium with a fresh profile and no
// background networking (this machine's network is closed), and returns
// the DOM once opts.VirtualTime has passed, or "" with a screenshot.
func Run(t testing.TB, url string, opts Options) string {
	t.Helper()
	if opts.VirtualTime <= 0 {
		opts.VirtualTime = 5 * time.Second
	}
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(), fmt.Sprintf("--virtual-time-budget=%d", opts.VirtualTime.Milliseconds())}
	if opts.Width > 0 && opts.Height > 0 {
		args = append(args, fmt.Sprintf("--window-size=%d,%d", opts.Width, opts.Height), "--force-device-scale-factor=1")
	}
	if opts.Screenshot != "" {
		args = append(args, "--screenshot="+opts.Screenshot)
	} else {
		args = append(args, "--dump-dom")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Path, append(args, url)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	return string(out)
}
