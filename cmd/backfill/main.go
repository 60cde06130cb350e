// Command backfill is the operator CLI: it scaffolds, generates and builds
// backfill binaries. Run `backfill --help`.
package main

import (
	"os"

	"github.com/runonce/backfill/cmd/backfill/internal/app"
)

func main() {
	os.Exit(app.Run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
