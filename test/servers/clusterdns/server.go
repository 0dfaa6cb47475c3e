package clusterdns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// DefaultDomain is the cluster domain when Options.Domain is empty.
const DefaultDomain = "cluster.local"

// Options configure Start.
type Options struct {
	// Kube lists and watches the Services. Required.
	Kube kubernetes.Interface
	// Domain is the cluster domain. Default DefaultDomain.
	Domain string
	// Addr is the address served, for UDP and TCP alike. Default
	// 127.0.0.1:0: a free port, the same for both.
	Addr string
	// Log, when set, receives one line per query: the name, the type, the
	// answer's code and records.
	Log io.Writer
}

// Server is a running cluster DNS server.
type Server struct {
	// Addr is the served address (host:port), for UDP and TCP.
	Addr string

	domain   string
	services corelisters.ServiceLister
	udp      net.PacketConn
	tcp      net.Listener
	stop     context.CancelFunc
	factory  informers.SharedInformerFactory
	wg       sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	asked   map[string]int
	log     io.Writer
	closed  bool
	closeMu sync.Once
}

// tcpIdle is how long a TCP connection may wait for its next query.
const tcpIdle = 30 * time.Second

// Start lists the Services, then serves until Close or the end of ctx.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Kube == nil {
		return nil, errors.New("clusterdns: Kube is required")
	}
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	opts.Domain = strings.ToLower(strings.Trim(opts.Domain, "."))
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	ctx, stop := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactory(opts.Kube, 0)
	lister := factory.Core().V1().Services().Lister()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			stop()
			factory.Shutdown()
			return nil, fmt.Errorf("clusterdns: listing %v: %w", typ, context.Cause(ctx))
		}
	}
	s := &Server{domain: opts.Domain, services: lister, stop: stop, factory: factory,
		conns: map[net.Conn]struct{}{}, asked: map[string]int{}, log: opts.Log}
	if err := s.listen(ctx, opts.Addr); err != nil {
		stop()
		factory.Shutdown()
		return nil, err
	}
	s.wg.Add(2)
	go s.serveUDP()
	go s.serveTCP()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	return s, nil
}

// listen opens the TCP listener, then the UDP socket on its port.
func (s *Server) listen(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	tcp, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("clusterdns: %w", err)
	}
	udp, err := lc.ListenPacket(ctx, "udp", tcp.Addr().String())
	if err != nil {
		_ = tcp.Close()
		return fmt.Errorf("clusterdns: %w", err)
	}
	s.tcp, s.udp, s.Addr = tcp, udp, tcp.Addr().String()
	return nil
}

// Close stops serving and waits for the serving goroutines.
func (s *Server) Close() error {
	var err error
	s.closeMu.Do(func() {
		s.stop()
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		err = errors.Join(s.udp.Close(), s.tcp.Close())
		s.wg.Wait()
		s.factory.Shutdown()
	})
	return err
}

// Asked returns how many queries for name (any type, any case, with or
// without the final dot) the server has answered.
func (s *Server) Asked(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[canonical(name)]
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := s.answer(buf[:n], true); resp != nil {
			_, _ = s.udp.WriteTo(resp, from)
		}
	}
}

func (s *Server) serveTCP() {
	defer s.wg.Done()
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// serveConn answers length-prefixed queries on one TCP connection until
// the client closes it, goes idle or sends something that is not DNS.
func (s *Server) serveConn(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	var size [2]byte
	for {
		if err := c.SetDeadline(time.Now().Add(tcpIdle)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		req := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		resp := s.answer(req, false)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp))) //nolint:gosec // answers are below 64 KiB: at most maxChain CNAMEs and a few addresses
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// record counts and logs an answered query.
func (s *Server) record(q dnsmessage.Question, rcode dnsmessage.RCode, answers []dnsmessage.Resource) {
	name := canonical(q.Name.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked[name]++
	if s.log == nil {
		return
	}
	var rrs []string
	for _, a := range answers {
		rrs = append(rrs, rrString(a))
	}
	_, _ = fmt.Fprintf(s.log, "%s %s %s %s\n", name, strings.TrimPrefix(q.Type.String(), "Type"),
		strings.TrimPrefix(rcode.String(), "RCode"), strings.Join(rrs, " "))
}
