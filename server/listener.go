package server

import (
	"net"
	"sync"
)

// listener accepts at most max connections at once (more wait in the kernel's backlog until
// one closes) and keeps the open ones by remote address, so that the server can close the
// connection of a caller that holds a stream without reading it (cut). grpc-go cannot end such
// a stream by itself: its trailers wait behind response data the caller never lets through.
type listener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once

	mu    sync.Mutex
	conns map[string]*conn
}

func newListener(l net.Listener, max int) *listener {
	return &listener{Listener: l, slots: make(chan struct{}, max), done: make(chan struct{}), conns: map[string]*conn{}}
}

func (l *listener) Accept() (net.Conn, error) {
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
	tc := &conn{Conn: c, l: l, key: c.RemoteAddr().String()}
	l.mu.Lock()
	l.conns[tc.key] = tc
	l.mu.Unlock()
	return tc, nil
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
	once sync.Once
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.conns[c.key] == c {
			delete(c.l.conns, c.key)
		}
		c.l.mu.Unlock()
		<-c.l.slots
	})
	return c.Conn.Close()
}
