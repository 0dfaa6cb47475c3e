// Command csi-sidecar-standin stands in for the two CSI sidecars of
// deploy/daemonset.yaml in the real-node suite: node-driver-registrar and
// livenessprobe, whose modules the Go module proxy does not serve. It takes
// their flags, so only the image names change.
//
//	csi-sidecar-standin registrar --csi-address=/csi/csi.sock --kubelet-registration-path=/var/lib/kubelet/plugins/connectors-csi/csi.sock
//	csi-sidecar-standin livenessprobe --csi-address=/csi/csi.sock --health-port=9808
//
// As registrar it asks the plugin its name (GetPluginInfo) and serves
// kubelet's plugin-registration API (k8s.io/kubelet/pkg/apis/pluginregistration/v1)
// on <plugin-registration-path>/<driver>-reg.sock. Like the real one it
// (re)creates that socket on start, so kubelet (re)registers the driver
// with it: it binds a temporary socket and renames it over the path, so
// the path never goes missing when a new pod's registrar starts beside an
// old one (a rolling upgrade with a surge). On exit it removes the socket
// only while the file there is the one it created: an old pod stopping
// after a new one started leaves the new registration alone. As
// livenessprobe it answers /healthz with the plugin's Probe.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func main() {
	if len(os.Args) < 2 {
		log.Fatal("usage: csi-sidecar-standin registrar|livenessprobe [flags]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch os.Args[1] {
	case "registrar":
		err = registrar(ctx, os.Args[2:])
	case "livenessprobe":
		err = livenessprobe(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown role %q: want registrar or livenessprobe", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

func dialCSI(address string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+filepath.Clean(trimUnix(address)), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func trimUnix(a string) string {
	if len(a) > 7 && a[:7] == "unix://" {
		return a[7:]
	}
	return a
}

// pluginName asks the plugin its name, retrying until it answers.
func pluginName(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := csi.NewIdentityClient(conn).GetPluginInfo(cctx, &csi.GetPluginInfoRequest{})
		cancel()
		if err == nil {
			return info.GetName(), nil
		}
		log.Printf("waiting for the CSI plugin: %v", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

type registrationServer struct {
	registration.UnimplementedRegistrationServer
	driver, endpoint string
}

func (s *registrationServer) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              s.driver,
		Endpoint:          s.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (s *registrationServer) NotifyRegistrationStatus(_ context.Context, st *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if st.GetPluginRegistered() {
		log.Printf("kubelet registered %s", s.driver)
	} else {
		log.Printf("kubelet refused %s: %s", s.driver, st.GetError())
	}
	return &registration.RegistrationStatusResponse{}, nil
}

func registrar(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("registrar", flag.ContinueOnError)
	csiAddress := fs.String("csi-address", "/csi/csi.sock", "the plugin's CSI socket in this container")
	kubeletPath := fs.String("kubelet-registration-path", "", "the plugin's CSI socket on the node, as kubelet dials it")
	regDir := fs.String("plugin-registration-path", "/registration", "kubelet's plugins_registry directory in this container")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeletPath == "" {
		return errors.New("--kubelet-registration-path is required")
	}
	conn, err := dialCSI(*csiAddress)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	driver, err := pluginName(ctx, conn)
	if err != nil {
		return err
	}
	socket := filepath.Join(*regDir, driver+"-reg.sock")
	lis, id, err := listenReplacing(socket)
	if err != nil {
		return err
	}
	defer func() {
		switch removed, err := removeIfOwned(socket, id); {
		case err != nil:
			log.Printf("removing %s: %v", socket, err)
		case !removed:
			log.Printf("leaving %s: it is no longer this registrar's", socket)
		}
	}()
	srv := grpc.NewServer()
	registration.RegisterRegistrationServer(srv, &registrationServer{driver: driver, endpoint: *kubeletPath})
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	log.Printf("serving the registration of %s on %s", driver, socket)
	return srv.Serve(lis)
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no device and inode", path)
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil //nolint:unconvert // Dev is 32-bit on some platforms
}

// listenReplacing listens on a temporary socket beside path and renames it
// over path, replacing a socket there atomically. The listener never
// unlinks on Close.
func listenReplacing(path string) (net.Listener, fileID, error) {
	var suffix [8]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fileID{}, err
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+"."+hex.EncodeToString(suffix[:])+".tmp")
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "unix", tmp)
	if err != nil {
		return nil, fileID{}, err
	}
	lis.(*net.UnixListener).SetUnlinkOnClose(false)
	id, err := statID(tmp)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = lis.Close()
		_ = os.Remove(tmp)
		return nil, fileID{}, fmt.Errorf("placing the registration socket at %s: %w", path, err)
	}
	return lis, id, nil
}

// removeIfOwned removes path only while it is the file identified by id.
func removeIfOwned(path string, id fileID) (bool, error) {
	cur, err := statID(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case cur != id:
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, nil
}

func livenessprobe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("livenessprobe", flag.ContinueOnError)
	csiAddress := fs.String("csi-address", "/csi/csi.sock", "the plugin's CSI socket in this container")
	port := fs.Int("health-port", 9808, "the port /healthz is served on")
	host := fs.String("http-endpoint-host", "", "the address /healthz listens on (all when empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	conn, err := dialCSI(*csiAddress)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		resp, err := csi.NewIdentityClient(conn).Probe(pctx, &csi.ProbeRequest{})
		switch {
		case err != nil:
			http.Error(w, "probe failed: "+err.Error(), http.StatusServiceUnavailable)
		case resp.GetReady() != nil && !resp.GetReady().GetValue():
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok"))
		}
	})
	srv := &http.Server{Addr: net.JoinHostPort(*host, strconv.Itoa(*port)), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
