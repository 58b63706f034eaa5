package main

import (
	"context"
	"flag"
	"io"
	"os"

	"github.com/hush-chat/hush/server"
)

func init() {
	commands["serve"] = command{
		summary: "run the delivery service (default http://127.0.0.1:8080, SQLite under ./data)",
		run:     runServe,
	}
}

// runServe runs the server until SIGINT or SIGTERM, then shuts it down
// gracefully. Settings come from flags, then HUSH_* environment
// variables, then the --config file (see docs/hush.sample.conf).
func runServe(ctx context.Context, _, stderr io.Writer, args []string) error {
	fs := flag.NewFlagSet("hush serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o, err := server.Configure(fs, args, os.Getenv)
	if err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return errUsage
	}
	srv, err := server.New(ctx, o)
	if err != nil {
		return err
	}
	return srv.Run(ctx)
}
