// Command mcp-sample-app is a tiny HTTP API standing in for the real MCP API in the
// deployment tests. Behaviour is selected at build time through APP_MODE:
//
//	ok        healthy service
//	crash     exits with status 1 at start
//	error500  health answers 500
//	slow      health answers 503 for the first 600 s
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const slowWarmup = 600 * time.Second

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

	log.Printf("mcp-sample-app version=%s mode=%s listening on %s", version, mode, addr)
	switch mode {
	case "ok", "error500", "slow":
	case "crash":
		log.Printf("APP_MODE=crash: exiting with status 1")
		os.Exit(1)
	default:
		log.Printf("unknown APP_MODE %q (expected ok, crash, error500 or slow)", mode)
		os.Exit(2)
	}

	var mu sync.Mutex
	itemsPath := filepath.Join(dataDir, "items.txt")

	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/health", func(w http.ResponseWriter, r *http.Request) {
		switch {
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
