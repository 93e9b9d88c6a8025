package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// --password-stdin takes the first line only, and refuses a line too long
// to have been read whole rather than sending part of it as the password.
func TestPasswordStdinReadsOneLine(t *testing.T) {
	long := strings.Repeat("p", 5000)
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{"secret-1\nsecond line\n", "secret-1", ""},
		{"secret-2\r\n", "secret-2", ""},
		{"secret-3", "secret-3", ""},
		{"\nsecret-4\n", "", "holds no password"},
		{"", "", "holds no password"},
		{long + "\n", "", "too long"},
		{long, "", "too long"},
	} {
		cmd := &cobra.Command{}
		cmd.SetIn(strings.NewReader(tc.in))
		user := "alice"
		pw, err := readCredentials(cmd, &user, true)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%.20q: %.20q, %v; want an error with %q", tc.in, pw, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "ppp") {
				t.Errorf("the error shows the password: %v", err)
			}
			continue
		}
		if err != nil || pw != tc.want {
			t.Errorf("%.20q: %q, %v; want %q", tc.in, pw, err, tc.want)
		}
	}
}
