// Command mcp-proxy-launch binds the proxy's public TCP socket once and execs Caddy with it
// as file descriptor 3 (Caddy listen address "fd/3").
//
// Why: on a config reload Caddy otherwise opens a second SO_REUSEPORT socket and closes the
// old one, and connections waiting in the old socket's accept queue are reset. With one
// inherited socket, every config (old and new) accepts from the same queue, so a reload
// (a blue-green switch) never refuses or resets a connection.
//
// Environment: MCP_PROXY_LISTEN (e.g. 127.0.0.1:8000). Arguments are passed to Caddy.
package main

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

const caddyPath = "/caddy"

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mcp-proxy-launch: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	addr := os.Getenv("MCP_PROXY_LISTEN")
	if addr == "" {
		fail("MCP_PROXY_LISTEN is not set (e.g. 127.0.0.1:8000)")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail("cannot listen on %s: %v", addr, err)
	}
	file, err := ln.(*net.TCPListener).File()
	if err != nil {
		fail("cannot get the socket of %s: %v", addr, err)
	}
	// dup3 without O_CLOEXEC: fd 3 survives the exec.
	if err := syscall.Dup3(int(file.Fd()), 3, 0); err != nil {
		fail("dup3: %v", err)
	}
	args := append([]string{"caddy"}, os.Args[1:]...)
	if err := syscall.Exec(caddyPath, args, os.Environ()); err != nil {
		fail("exec %s: %v", caddyPath, err)
	}
}
