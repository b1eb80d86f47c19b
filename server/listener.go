package server

import (
	"net"
	"sync"
)

// listener accepts at most max connections at once (more wait in the kernel's backlog until
// one closes), at most perAddr of them from one IP address (a further one is closed as soon as
// it is accepted, so that one address cannot take every slot), and keeps the open ones by
// remote address, so that the server can close the connection of a caller that holds a stream
// without reading it (cut). grpc-go cannot end such a stream by itself: its trailers wait
// behind response data the caller never lets through.
type listener struct {
	net.Listener
	slots   chan struct{}
	done    chan struct{}
	once    sync.Once
	perAddr int // < 0: no cap

	mu     sync.Mutex
	conns  map[string]*conn
	byHost map[string]int
	shed   int // connections closed at once for their address's cap
}

func newListener(l net.Listener, max, perAddr int) *listener {
	return &listener{Listener: l, slots: make(chan struct{}, max), done: make(chan struct{}), perAddr: perAddr,
		conns: map[string]*conn{}, byHost: map[string]int{}}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.perAddr >= 0 && l.byHost[host] >= l.perAddr {
			l.shed++
			l.mu.Unlock()
			c.Close()
			<-l.slots
			continue
		}
		tc := &conn{Conn: c, l: l, key: c.RemoteAddr().String(), host: host}
		l.conns[tc.key] = tc
		l.byHost[host]++
		l.mu.Unlock()
		return tc, nil
	}
}

func (l *listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// cut closes the connection from remote address addr, and reports whether there was one.
func (l *listener) cut(addr string) bool {
	l.mu.Lock()
	c := l.conns[addr]
	l.mu.Unlock()
	if c == nil {
		return false
	}
	c.Close()
	return true
}

// open returns the number of open connections.
func (l *listener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type conn struct {
	net.Conn
	l    *listener
	key  string
	host string
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns[c.key] == c {
			delete(c.l.conns, c.key)
		}
		if c.l.byHost[c.host]--; c.l.byHost[c.host] <= 0 {
			delete(c.l.byHost, c.host)
		}
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return c.Conn.Close()
}
