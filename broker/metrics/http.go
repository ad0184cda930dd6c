package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tributary/tributary/broker/boot/bootstatus"
)

// Handler serves the metrics port (metrics.listen, 11001 as MSK's open
// monitoring):
//
//	/metrics  Prometheus exposition (text, or OpenMetrics when asked): the
//	          broker's metrics plus the Go runtime's (go_*) and the
//	          process's (process_*)
//	/healthz  200 while the process runs
//	/readyz   200 when the readiness check (SetReady) passes, else 503 with
//	          the reason; 503 until one is registered
//	/bootz    the boot agent's status file (bootstatus.Handler): 200 when the
//	          boot finished, 503 while booting or after a failure, 404 when
//	          the broker was not started by the agent (bootStatusPath "")
//
// bootStatusPath is normally os.Getenv(bootstatus.EnvPath).
func (r *Registry) Handler(bootStatusPath string) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{r}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _, ready := r.sources()
		if ready == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: starting")
			return
		}
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/bootz", bootstatus.Handler(bootStatusPath))
	return mux
}

// HTTPServer is the running metrics endpoint.
type HTTPServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// ListenHTTP binds addr now (so a port in use fails the start) and serves
// h on it in the background until Shutdown, to any source.
func ListenHTTP(addr string, h http.Handler, log *slog.Logger) (*HTTPServer, error) {
	return ListenHTTPFrom(addr, nil, h, log)
}

// ListenHTTPFrom is ListenHTTP answering only the sources AllowSources
// lets in (allowed empty: any).
func ListenHTTPFrom(addr string, allowed []netip.Prefix, h http.Handler, log *slog.Logger) (*HTTPServer, error) {
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics endpoint: listening on %s: %w", addr, err)
	}
	ln = AllowSources(ln, allowed, log)
	s := &HTTPServer{
		ln:   ln,
		done: make(chan struct{}),
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second, // a scrape of many partitions takes a while
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "listen", ln.Addr().String(), "allowed_sources", len(allowed))
	return s, nil
}

// Addr is the bound address.
func (s *HTTPServer) Addr() net.Addr { return s.ln.Addr() }

// Shutdown stops the endpoint, letting in-flight scrapes finish until ctx
// ends.
func (s *HTTPServer) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
