package main

// This file adds --pprof to `hush serve` without touching serve.go: its
// init wraps the serve command, which serve.go's init registered first
// (the go command initializes a package's files in file-name order, and
// "serve.go" sorts before "serve_pprof.go"; the panic below says so if that
// ever changes).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"
)

const pprofUsage = "  -pprof address\n    \tserve the Go profiler (/debug/pprof/) on this loopback host:port, apart from the API (env HUSH_PPROF); off by default\n"

func init() {
	serve, ok := commands["serve"]
	if !ok {
		panic("cmd/hush: serve_pprof.go initialized before serve.go registered the serve command")
	}
	next := serve.run
	serve.run = func(ctx context.Context, stdout, stderr io.Writer, args []string) error {
		addr, rest, err := pprofFlag(args, os.Getenv("HUSH_PPROF"))
		if err != nil {
			fmt.Fprintf(stderr, "hush serve: %v\n", err)
			return errUsage
		}
		if help(rest) {
			err := next(ctx, stdout, stderr, rest)
			fmt.Fprint(stderr, pprofUsage)
			return err
		}
		if addr != "" {
			stop, err := servePprof(addr)
			if err != nil {
				return err
			}
			defer stop()
		}
		return next(ctx, stdout, stderr, rest)
	}
	commands["serve"] = serve
}

func help(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			return true
		case "--":
			return false
		}
	}
	return false
}

// pprofFlag takes -pprof/--pprof (with "=" or as two arguments) out of
// args; env is the value when the flag is absent.
func pprofFlag(args []string, env string) (addr string, rest []string, err error) {
	addr = env
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "pprof" {
			rest = append(rest, a)
			continue
		}
		if !hasValue {
			if i+1 == len(args) {
				return "", nil, errors.New("flag needs an argument: -pprof")
			}
			i++
			value = args[i]
		}
		addr = value
	}
	return addr, rest, nil
}

// servePprof serves net/http/pprof on addr, which must be a loopback
// address: profiles reveal the program's internals and cost CPU, so they
// are never offered to the network.
func servePprof(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--pprof %q: only a loopback address is allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Fprintf(os.Stderr, "hush serve: profiler on http://%s/debug/pprof/\n", ln.Addr())
	return func() { srv.Close() }, nil
}
