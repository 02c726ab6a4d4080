// Command mcp-sample-app is a tiny HTTP API standing in for the real MCP API in the
// deployment tests. Behaviour is selected at build time through APP_MODE:
//
//	ok        healthy service
//	crash     exits with status 1 at start
//	error500  health answers 500
//	slow      health answers 503 for the first 600 s
//	gated     health answers 503 until a POST to /api/v1/open (then 200): a release that
//	          holds its deploy (and the Pulumi stack lock) exactly as long as a test needs,
//	          e.g. until a second deploy has been seen waiting for that lock
//	flaky500  healthy (/api/v1/health always 200), but every other request to
//	          /api/v1/version answers 500: a release that passes its health check and
//	          then fails a share of real traffic (what a canary's gate must catch)
//	laggy     healthy, but every request to /api/v1/version takes 800 ms: a release that
//	          passes its health check and then answers real traffic too slowly (what a
//	          canary's latency gate must catch)
//	writer    healthy, and appends to <data>/stream.log without pause (a busy app: its data
//	          changes while a backup reads it); GET /api/v1/dump copies it, under the
//	          writer's lock, to <data>/dump.txt (a consistent dump, like a database's)
//
// Every mode serves GET /api/v1/version ({"version": ...}): the route the load prober of the
// canary tests and benchmark asks.
//
// `mcp-sample-app dump` (run in the container, e.g. as a pre-backup command: the image has
// no shell) asks the running app for that dump and exits 0 once it is written.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	slowWarmup     = 600 * time.Second
	laggyDelay     = 800 * time.Millisecond
	streamLineSize = 4096     // bytes per stream.log line, newline included
	streamMaxBytes = 32 << 20 // stream.log starts over beyond this
)

// streamWriter appends numbered lines of streamLineSize bytes to path, one per millisecond,
// holding mu for each line (so a dump taken under mu only sees whole lines).
func streamWriter(mu *sync.Mutex, path string) {
	pad := strings.Repeat("x", streamLineSize)
	seq := 0
	var size int64
	for {
		mu.Lock()
		flags := os.O_APPEND | os.O_CREATE | os.O_WRONLY
		if size >= streamMaxBytes {
			flags |= os.O_TRUNC
			size = 0
		}
		f, err := os.OpenFile(path, flags, 0o644)
		if err == nil {
			seq++
			head := fmt.Sprintf("seq=%d ", seq)
			line := head + pad[:streamLineSize-len(head)-1] + "\n"
			if _, err = f.WriteString(line); err == nil {
				size += int64(len(line))
			}
			_ = f.Close()
		}
		mu.Unlock()
		if err != nil {
			log.Printf("writer: %v", err)
			time.Sleep(time.Second)
		}
		time.Sleep(time.Millisecond)
	}
}

// dumpStream copies src to dst (via a temp file and a rename); the caller holds the lock.
func dumpStream(src, dst string) error {
	content, err := os.ReadFile(src)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, content, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// runDump is `mcp-sample-app dump`: ask the running app (same container) for a dump.
func runDump(addr string) int {
	port := addr[strings.LastIndex(addr, ":")+1:]
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + port + "/api/v1/dump")
	if err != nil {
		fmt.Fprintf(os.Stderr, "dump: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "dump: HTTP %d: %s\n", resp.StatusCode, body)
		return 1
	}
	fmt.Printf("dump: %s", body)
	return 0
}

func getenv(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func main() {
	version := getenv("APP_VERSION", "dev")
	mode := getenv("APP_MODE", "ok")
	addr := getenv("APP_LISTEN", ":8080")
	dataDir := getenv("APP_DATA_DIR", "/data")
	started := time.Now()

	if len(os.Args) > 1 {
		if os.Args[1] == "dump" {
			os.Exit(runDump(addr))
		}
		fmt.Fprintf(os.Stderr, "unknown command %q (expected: dump)\n", os.Args[1])
		os.Exit(2)
	}

	log.Printf("mcp-sample-app version=%s mode=%s listening on %s", version, mode, addr)
	switch mode {
	case "ok", "error500", "slow", "writer", "flaky500", "gated", "laggy":
	case "crash":
		log.Printf("APP_MODE=crash: exiting with status 1")
		os.Exit(1)
	default:
		log.Printf("unknown APP_MODE %q (expected ok, crash, error500, slow, writer, flaky500, gated or laggy)", mode)
		os.Exit(2)
	}

	var mu, streamMu sync.Mutex
	itemsPath := filepath.Join(dataDir, "items.txt")
	streamPath := filepath.Join(dataDir, "stream.log")
	dumpPath := filepath.Join(dataDir, "dump.txt")
	if mode == "writer" {
		go streamWriter(&streamMu, streamPath)
	}

	var opened atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case mode == "gated" && !opened.Load():
			writeJSON(w, http.StatusServiceUnavailable,
				map[string]string{"status": "gated", "version": version})
		case mode == "error500":
			writeJSON(w, http.StatusInternalServerError,
				map[string]string{"status": "error", "version": version})
		case mode == "slow" && time.Since(started) < slowWarmup:
			writeJSON(w, http.StatusServiceUnavailable,
				map[string]string{"status": "starting", "version": version})
		default:
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": version})
		}
	})
	var served atomic.Uint64
	mux.HandleFunc("/api/v1/version", func(w http.ResponseWriter, r *http.Request) {
		if mode == "laggy" {
			time.Sleep(laggyDelay)
		}
		if mode == "flaky500" && served.Add(1)%2 == 0 {
			writeJSON(w, http.StatusInternalServerError,
				map[string]string{"status": "error", "version": version})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": version})
	})
	mux.HandleFunc("/api/v1/open", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		opened.Store(true)
		writeJSON(w, http.StatusOK, map[string]string{"status": "open", "version": version})
	})
	mux.HandleFunc("/api/v1/dump", func(w http.ResponseWriter, r *http.Request) {
		streamMu.Lock()
		defer streamMu.Unlock()
		if err := dumpStream(streamPath, dumpPath); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"dumped": dumpPath})
	})
	mux.HandleFunc("/api/v1/data", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			content, err := os.ReadFile(itemsPath)
			if err != nil && !os.IsNotExist(err) {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(content)
		case http.MethodPost:
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			f, err := os.OpenFile(itemsPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer f.Close()
			line := string(body)
			if len(line) == 0 || line[len(line)-1] != '\n' {
				line += "\n"
			}
			if _, err := f.WriteString(line); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeJSON(w, http.StatusCreated, map[string]string{"stored": fmt.Sprintf("%d bytes", len(body))})
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})

	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
