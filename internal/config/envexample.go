package config

import (
	"fmt"
	"strings"
)

// EnvExample renders .env.example from Vars, so the file lists every
// variable with its default and meaning (a test keeps them equal).
func EnvExample() string {
	var b strings.Builder
	b.WriteString("# Every setting clipper reads, with its default and meaning. Copy to .env\n")
	b.WriteString("# for local overrides: clipper reads ./.env at start, and variables already\n")
	b.WriteString("# set in the environment win. Secrets also accept NAME_FILE=/path/to/file.\n")
	b.WriteString("# Generated from internal/config (go test ./internal/config -update).\n")
	for _, v := range Vars {
		b.WriteString("\n# " + v.Help)
		if v.Secret {
			b.WriteString(" (secret)")
		}
		b.WriteString("\n")
		def := v.Default
		if strings.HasPrefix(def, "(") || strings.Contains(def, "<") {
			fmt.Fprintf(&b, "# default: %s\n", def)
			def = ""
		}
		fmt.Fprintf(&b, "# %s=%s\n", v.Name, def)
	}
	return b.String()
}
