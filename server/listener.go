package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Shedding: at the connection cap, a new connection takes the slot of the open one that has
// been idle longest — no call in progress and no byte either way for at least shedIdle — rather
// than wait behind it. Idle connections cost an attacker nothing to hold; a caller's new one
// does work. When none is idle, the new connection waits (the kernel's backlog), checked again
// every shedPoll.
const (
	shedIdle = time.Second
	shedPoll = 50 * time.Millisecond
)

// listener accepts at most max connections at once, at most perAddr of them from one IP address
// (a further one is closed as soon as it is accepted, so that one address cannot take every
// slot), and at the cap sheds the longest idle connection for a new one. It keeps the open
// connections by remote address, so that the server can close the connection of a caller that
// holds a stream without reading it (cut), and so that the transports can say which are busy
// (busy). grpc-go cannot end such a stream by itself: its trailers wait behind response data
// the caller never lets through.
type listener struct {
	net.Listener
	slots   chan struct{}
	done    chan struct{}
	once    sync.Once
	perAddr int // < 0: no cap

	mu       sync.Mutex
	conns    map[string]*conn
	byHost   map[string]int
	shed     int // connections closed at once for their address's cap
	idleShed int // idle connections closed to make room at the cap
}

func newListener(l net.Listener, max, perAddr int) *listener {
	return &listener{Listener: l, slots: make(chan struct{}, max), done: make(chan struct{}), perAddr: perAddr,
		conns: map[string]*conn{}, byHost: map[string]int{}}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		if !l.acquire() {
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
		tc.last.Store(time.Now().UnixNano())
		l.conns[tc.key] = tc
		l.byHost[host]++
		l.mu.Unlock()
		return tc, nil
	}
}

// acquire takes a slot for the next connection: a free one, else one freed by shedding the
// longest idle connection, else the first to free up. It reports false once the listener is
// closed.
func (l *listener) acquire() bool {
	for {
		select {
		case l.slots <- struct{}{}:
			return true
		case <-l.done:
			return false
		default:
		}
		if c := l.longestIdle(time.Now()); c != nil {
			c.Close() // frees its slot
			continue
		}
		t := time.NewTimer(shedPoll)
		select {
		case l.slots <- struct{}{}:
			t.Stop()
			return true
		case <-l.done:
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// longestIdle returns the open connection idle longest, if one has been idle for shedIdle, and
// counts it as shed.
func (l *listener) longestIdle(now time.Time) *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	var oldest *conn
	limit := now.Add(-shedIdle).UnixNano()
	for _, c := range l.conns {
		if last := c.last.Load(); c.calls.Load() == 0 && last <= limit && (oldest == nil || last < oldest.last.Load()) {
			oldest = c
		}
	}
	if oldest != nil {
		l.idleShed++
	}
	return oldest
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

// busy adds delta to the calls in progress on the connection from remote address addr (none:
// nothing happens). The transports call it as calls begin and end; a connection with a call in
// progress is never shed, however long the call stays quiet.
func (l *listener) busy(addr string, delta int32) {
	l.mu.Lock()
	c := l.conns[addr]
	l.mu.Unlock()
	if c != nil {
		c.calls.Add(delta)
		c.last.Store(time.Now().UnixNano())
	}
}

// open returns the number of open connections.
func (l *listener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type conn struct {
	net.Conn
	l     *listener
	key   string
	host  string
	once  sync.Once
	last  atomic.Int64 // Unix nanoseconds of the last byte read or written, or of the accept
	calls atomic.Int32 // calls in progress
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
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
