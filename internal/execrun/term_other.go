//go:build !linux

package execrun

import "os"

// termios is false off Linux: exec's messages stay in the configured
// format there.
func termios(*os.File) bool { return false }
